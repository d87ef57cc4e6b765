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
    },
    "healthchain": {"ExperimentTracker", "AsyncExperimentTracker", "ExperimentStatus"},
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


def test_tracking_exports_nothing_private() -> None:
    import healthchain.tracking as tracking

    assert set(tracking.__all__) == {
        "DEFAULT_STORAGE_URI",
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
        "RequestRecord",
        "RequestStats",
        "StorageError",
        "TrackerClosedError",
        "TrackerError",
        "mask_uri",
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
