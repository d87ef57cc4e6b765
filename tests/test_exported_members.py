"""The public names other code relies on (DESIGN.md's contract), pinned."""

from __future__ import annotations

import importlib

import pytest

CONTRACT = {
    "healthchain.tracking": {
        "AsyncExperimentTracker",
        "ExperimentTracker",
        "Experiment",
        "ExperimentStatus",
        "TrackerError",
        "ExperimentNotFoundError",
        "MetricPoint",
        "AmbiguousIdError",
    },
    "healthchain": {
        "ExperimentTracker",
        "AsyncExperimentTracker",
        "ExperimentStatus",
        "BaseUseCase",
        "MetricPoint",
        "sandbox",
        "api",
        "ehr",
        "feedback",
        "score",
    },
    "healthchain.use_cases": {"BaseUseCase", "ClinicalDecisionSupport"},
    "healthchain.models": {"CDSRequest", "CDSResponse", "Card", "CdsFhirData"},
    "healthchain.pipeline": {"Pipeline", "SummarizationPipeline"},
    "healthchain.data_generators": {"CdsDataGenerator"},
}


@pytest.mark.parametrize("module_name", sorted(CONTRACT))
def test_contract_names_are_exported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert CONTRACT[module_name] <= set(module.__all__)


@pytest.mark.parametrize("module_name", sorted(CONTRACT))
def test_every_export_exists_and_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        member = getattr(module, name)
        if callable(member):
            assert member.__doc__, f"{module_name}.{name} has no docstring"


def test_top_level_decorators_are_the_sandbox_ones() -> None:
    import healthchain as hc

    sandbox_package = importlib.import_module("healthchain.sandbox")
    assert hc.sandbox is sandbox_package.sandbox
    assert hc.api is sandbox_package.api
    assert hc.ehr is sandbox_package.ehr
    assert hc.feedback is sandbox_package.feedback
    assert hc.score is sandbox_package.score


def test_importing_the_tracker_does_not_load_the_sandbox_stack() -> None:
    # Scripts that only track pay for the tracker, not for uvicorn, httpx or FHIR models.
    import subprocess
    import sys

    code = (
        "import sys, healthchain.tracking, healthchain as hc; hc.sandbox; "
        "print(sorted(m for m in ('uvicorn', 'httpx', 'fhir.resources', 'starlette') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_version_is_the_installed_distributions() -> None:
    # A source tree never installed gets "0+unknown" (test_cli_terminal.py's --version test).
    from importlib import metadata

    import healthchain as hc

    assert hc.__version__ == metadata.version("healthchain")
    assert "__version__" in dir(hc)
    from healthchain import __version__

    assert __version__ == hc.__version__


def test_tracking_exports_nothing_private() -> None:
    import healthchain.tracking as tracking

    assert set(tracking.__all__) == {
        "DEFAULT_STORAGE_URI",
        "AmbiguousIdError",
        "AsyncExperimentTracker",
        "Component",
        "ConfigurationError",
        "DriverNotInstalledError",
        "Experiment",
        "ExperimentNotFoundError",
        "ExperimentStateError",
        "ExperimentStatus",
        "ExperimentTracker",
        "ExtraNotInstalledError",
        "InvalidFilterError",
        "InvalidInputError",
        "MetricPoint",
        "RequestRecord",
        "RequestStats",
        "StorageError",
        "TrackerClosedError",
        "TrackerError",
        "mask_uri",
        "request_failed",
        "upgrade_database",
    }


def test_error_hierarchy_subclasses_the_fitting_builtins() -> None:
    from healthchain import tracking as t

    assert issubclass(t.ExperimentNotFoundError, t.TrackerError)
    assert issubclass(t.ExperimentNotFoundError, LookupError)
    assert issubclass(t.InvalidFilterError, ValueError)
    assert issubclass(t.DriverNotInstalledError, ImportError)
    assert issubclass(t.TrackerClosedError, RuntimeError)
    assert issubclass(t.StorageError, OSError)


def test_the_top_level_names_load_on_first_use() -> None:
    # ``import healthchain.cli`` runs healthchain/__init__: it must not pull in the sandbox.
    import subprocess
    import sys

    code = (
        "import sys, healthchain as hc\n"
        "heavy = ('healthchain.sandbox', 'healthchain.use_cases')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert set(hc.__all__) <= set(dir(hc)), dir(hc)\n"
        "import healthchain.sandbox\n"  # the subpackage first: hc.sandbox stays the decorator
        "assert hc.sandbox is sys.modules['healthchain.sandbox'].sandbox, hc.sandbox\n"
        "from healthchain import BaseUseCase, sandbox\n"
        "assert sandbox is hc.sandbox and BaseUseCase.__module__.startswith('healthchain.')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    import healthchain

    with pytest.raises(AttributeError, match="no_such_name"):
        healthchain.no_such_name  # noqa: B018
