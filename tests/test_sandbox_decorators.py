"""@sandbox, @api and @ehr: what they accept, what they reject at decoration, and exports."""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

import pytest

from healthchain.models import CdsFhirData, CDSRequest, CDSResponse
from healthchain.sandbox import (
    ExperimentConfig,
    SandboxConfigError,
    SandboxDefinitionError,
    SandboxError,
    ServiceConfig,
    api,
    ehr,
    feedback,
    sandbox,
    score,
)
from healthchain.sandbox._handlers import find_handlers
from healthchain.tracking import ConfigurationError, ExperimentTracker
from healthchain.use_cases import BaseUseCase, ClinicalDecisionSupport

# ``healthchain.sandbox`` is the decorator; the package itself is in sys.modules.
sandbox_package = importlib.import_module("healthchain.sandbox")


def test_exports_are_pinned() -> None:
    assert sandbox_package.__all__ == [
        "ExperimentConfig",
        "RequestOutcome",
        "SandboxConfigError",
        "SandboxDefinitionError",
        "SandboxError",
        "SandboxResult",
        "SandboxRunError",
        "ServiceConfig",
        "ServiceStartError",
        "api",
        "ehr",
        "feedback",
        "sandbox",
        "score",
    ]
    for name in sandbox_package.__all__:
        assert getattr(sandbox_package, name).__module__.startswith("healthchain.sandbox")


def test_error_hierarchy() -> None:
    assert issubclass(SandboxConfigError, SandboxError)
    assert issubclass(SandboxConfigError, ValueError)
    assert issubclass(SandboxDefinitionError, TypeError)
    assert issubclass(sandbox_package.ServiceStartError, OSError)


def test_bare_sandbox_keeps_the_class_and_turns_tracking_off() -> None:
    @sandbox
    class Bare(ClinicalDecisionSupport):
        pass

    assert Bare.__name__ == "Bare"
    with Bare() as use_case:
        assert use_case.experiment_tracker is None


def test_the_tracker_is_set_before_init_runs(storage_uri: str) -> None:
    seen: list[object] = []

    @sandbox(experiment_config={"storage_uri": storage_uri, "project_name": "p"})
    class Tracked(ClinicalDecisionSupport):
        def __init__(self, flag: int, *, name: str = "x") -> None:
            seen.append(self.experiment_tracker)
            self.flag = flag

    with Tracked(3, name="y") as use_case:
        assert use_case.flag == 3
        assert isinstance(seen[0], ExperimentTracker)
        assert seen[0] is use_case.experiment_tracker
        assert use_case.experiment_tracker.project_name == "p"
    # Closed with the instance; __init__ keeps its signature.
    assert "closed" in repr(seen[0])
    assert str(inspect.signature(Tracked.__init__)) == (
        "(self, flag: 'int', *, name: 'str' = 'x') -> 'None'"
    )


def test_decorators_keep_functions_and_signatures() -> None:
    def handler(self: Any, request: CDSRequest) -> CDSResponse:
        raise NotImplementedError

    def load(self: Any, seed: int = 0) -> CdsFhirData:
        raise NotImplementedError

    assert api(handler) is handler
    marked = ehr(workflow="patient-view", num=2)(load)
    assert marked is load
    assert str(inspect.signature(marked)) == "(self: 'Any', seed: 'int' = 0) -> 'CdsFhirData'"


@pytest.mark.parametrize("target", [object, 42, CDSRequest])
def test_sandbox_on_anything_but_a_use_case_is_a_type_error(target: Any) -> None:
    with pytest.raises(TypeError, match="@sandbox decorates a BaseUseCase subclass"):
        sandbox(target)
    with pytest.raises(TypeError, match="BaseUseCase subclass"):
        sandbox(experiment_config={})(target)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"storage_url": "sqlite:///x.db"}, "no key 'storage_url'; did you mean 'storage_uri'?"),
        ({"projectname": "p"}, "no key 'projectname'; did you mean 'project_name'?"),
        ({"tag": {}}, "no key 'tag'; did you mean 'tags'?"),
        ({"colour": "red"}, "no key 'colour' \\(valid keys: 'storage_uri'"),
        ({"storage_uri": 3}, "\\['storage_uri'\\] must be a database URL"),
        ({"project_name": ""}, "\\['project_name'\\] must be a non-empty string"),
        ({"tags": ["a"]}, "\\['tags'\\] must be a dict"),
        ({"tags": {"deep": functools.reduce(lambda x, _: [x], range(3000), 0)}}, "64 levels deep"),
        ({"tags": {"big": "x" * 3000}}, "\\['tags'\\]\\['big'\\] takes 3,005 bytes"),
        ({"tags": {"nan": float("nan")}}, "\\['tags'\\]\\['nan'\\] = nan is not JSON"),
        ({"tags": {1: "a"}}, "\\['tags'\\] keys must be strings, got 1"),
        ({"heartbeat_interval": 0}, "\\['heartbeat_interval'\\] must be a number from 0.05 to"),
        ({"heartbeat_interval": 1e-6}, "from 0.05 to 86,400 s, got 1e-06"),
        ({"heartbeat_interval": 1e15}, "from 0.05 to 86,400 s, got 1000000000000000.0"),
        ({"outage_timeout": -1}, "\\['outage_timeout'\\] must be a number from 0.1 to 604,800 s"),
        ({"outage_timeout": 1e300}, "\\['outage_timeout'\\] .* got 1e\\+300"),
        ({"max_queued_writes": 0}, "\\['max_queued_writes'\\] must be an integer from 1 to"),
        ({"max_queued_writes": 2**70}, "from 1 to 10,000,000, got 1180591620717411303424"),
        ({"max_queued_writes": 2.5}, "\\['max_queued_writes'\\] must be .* got 2.5"),
        ("sqlite:///x.db", "experiment_config must be a dict, got str"),
    ],
)
def test_bad_experiment_config_is_an_error_at_decoration(config: Any, message: str) -> None:
    with pytest.raises(SandboxConfigError, match=message):
        sandbox(experiment_config=config)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hots": "0.0.0.0"}, "service_config has no key 'hots'; did you mean 'host'?"),
        ({"prot": 0}, "did you mean 'port'?"),
        ({"port": -1}, "\\['port'\\] must be an integer from 0 to 65535"),
        ({"port": "80"}, "\\['port'\\] must be an integer"),
        ({"port": True}, "\\['port'\\] must be an integer"),
        ({"host": ""}, "\\['host'\\] must be a host name"),
        ({"timeout": 0}, "\\['timeout'\\] must be a number from 0.001 to 86,400 s, got 0"),
        ({"timeout": 1e300}, "\\['timeout'\\] must be a number from 0.001 to 86,400 s"),
        (
            {"max_concurrency": 0},
            "\\['max_concurrency'\\] must be an integer from 1 to 256 requests, got 0",
        ),
        ({"max_concurrency": 257}, "\\['max_concurrency'\\] must be an integer from 1 to 256"),
        ({"max_concurrency": 10**9}, "from 1 to 256 requests, got 1000000000"),
        ({"max_concurrency": 2.0}, "\\['max_concurrency'\\] must be an integer"),
        ({"max_concurrency": True}, "\\['max_concurrency'\\] must be an integer"),
    ],
)
def test_bad_service_config_is_an_error_at_decoration(config: Any, message: str) -> None:
    with pytest.raises(SandboxConfigError, match=message):
        sandbox(service_config=config)


def test_configs_have_the_documented_defaults() -> None:
    assert ExperimentConfig.from_mapping({}) == ExperimentConfig(
        storage_uri="sqlite:///experiments.db",
        project_name="healthchain",
        tags=None,
        heartbeat_interval=10.0,
        outage_timeout=60.0,
        max_queued_writes=100_000,
    )
    service = ServiceConfig.from_mapping({})
    assert (service.host, service.port) == ("127.0.0.1", 8000)
    assert ServiceConfig.from_mapping({"port": 0}).port == 0
    assert service.max_concurrency == 1
    for ends in (1, 256):  # both ends of the range are accepted as given
        assert ServiceConfig.from_mapping({"max_concurrency": ends}).max_concurrency == ends


def test_ehr_needs_a_workflow() -> None:
    with pytest.raises(SandboxConfigError, match=r"@ehr needs a workflow"):

        @ehr  # type: ignore[arg-type]
        def load(self: Any) -> None: ...

    with pytest.raises(SandboxConfigError, match=r"must name a workflow.*got None"):
        ehr()


@pytest.mark.parametrize("num", [0, -3, 1.5, True])
def test_ehr_num_must_be_at_least_one(num: Any) -> None:
    with pytest.raises(SandboxConfigError, match=rf"@ehr\(num=\.\.\.\).*got {num!r}"):
        ehr(workflow="patient-view", num=num)


def test_an_unsupported_workflow_is_an_error_at_decoration_suggesting_the_near_one() -> None:
    class Discharge(ClinicalDecisionSupport):
        @ehr(workflow="encounter-dischrge")
        def load(self) -> None: ...

    with pytest.raises(
        SandboxConfigError,
        match=r"workflow='encounter-dischrge'.*did you mean 'encounter-discharge'\?",
    ):
        sandbox(Discharge)


def test_a_base_use_case_supports_no_workflow() -> None:
    class Nothing(BaseUseCase):
        @ehr(workflow="patient-view")
        def load(self) -> None: ...

    with pytest.raises(SandboxConfigError, match="Nothing supports no workflows"):
        sandbox(Nothing)


def test_two_api_handlers_are_an_error_naming_both() -> None:
    class Twice(ClinicalDecisionSupport):
        @api
        def first(self, request: CDSRequest) -> CDSResponse: ...

        @api
        def second(self, request: CDSRequest) -> CDSResponse: ...

    with pytest.raises(
        SandboxDefinitionError, match=r"more than one @api handler.*'first'.*'second'"
    ):
        sandbox(Twice)


def test_two_ehr_methods_are_an_error_naming_both() -> None:
    class Twice(ClinicalDecisionSupport):
        @ehr(workflow="patient-view")
        def first(self) -> None: ...

        @ehr(workflow="patient-view")
        def second(self) -> None: ...

    with pytest.raises(
        SandboxDefinitionError, match=r"more than one @ehr method.*'first'.*'second'"
    ):
        sandbox(Twice)


def test_handlers_are_found_along_the_mro_and_overrides_win() -> None:
    class Parent(ClinicalDecisionSupport):
        @api
        def handle(self, request: CDSRequest) -> CDSResponse: ...

        @ehr(workflow="patient-view", num=4)
        def load(self) -> None: ...

    class Child(Parent):
        def handle(self, request: CDSRequest) -> CDSResponse: ...  # unmarked override

    parent = find_handlers(Parent)
    assert (parent.api, parent.ehr, parent.ehr_spec and parent.ehr_spec.num) == (
        "handle",
        "load",
        4,
    )
    assert find_handlers(Child).api is None


def test_partials_and_callable_objects_can_be_marked() -> None:
    class Handler:
        async def __call__(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

    marked = api(functools.partial(lambda request, extra: None, extra=1))
    assert marked.__healthchain_api__ is True  # type: ignore[attr-defined]
    assert api(Handler()).__healthchain_api__ is True  # type: ignore[attr-defined]


def test_api_rejects_what_it_cannot_mark() -> None:
    with pytest.raises(SandboxDefinitionError, match="@api marks a function"):
        api(3)  # type: ignore[arg-type]
    with pytest.raises(SandboxDefinitionError, match="cannot mark"):
        api(len)


@pytest.mark.parametrize(
    ("name", "decorate", "attribute"),
    [
        ("api", api, "__healthchain_api__"),
        ("ehr", ehr(workflow="patient-view"), "__healthchain_ehr__"),
        ("feedback", feedback, "__healthchain_feedback__"),
        ("score", score, "__healthchain_score__"),
    ],
)
def test_each_marking_decorator_names_itself_when_refusing(
    name: str, decorate: Any, attribute: str
) -> None:
    with pytest.raises(SandboxDefinitionError) as refused:
        decorate(3)
    assert str(refused.value) == f"@{name} marks a function or method, got 3"
    with pytest.raises(SandboxDefinitionError, match="cannot mark"):
        decorate(len)

    def handler() -> None: ...

    assert decorate(handler) is handler
    assert getattr(handler, attribute)


def test_a_storage_uri_the_tracker_cannot_use_fails_when_the_instance_is_made() -> None:
    @sandbox(experiment_config={"storage_uri": "mongodb://localhost/experiments"})
    class Unstorable(ClinicalDecisionSupport):
        def __init__(self) -> None:
            raise AssertionError("__init__ must not run without a tracker")

    with pytest.raises(ConfigurationError, match="'mongodb'"):
        Unstorable()
