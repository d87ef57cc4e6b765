"""Sandbox runs: a real uvicorn server on a free port, the EHR client, and what gets recorded."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from blockbuster import BlockBuster
from helpers.sandbox_cases import (
    async_ok,
    card,
    define,
    load_async,
    load_sync,
    new_request,
    run,
    sync_ok,
)
from helpers.storage import Storage

from healthchain.data_generators import CdsDataGenerator
from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse, Source
from healthchain.pipeline import Pipeline
from healthchain.sandbox import (
    SandboxConfigError,
    SandboxDefinitionError,
    SandboxResult,
    SandboxRunError,
    ServiceStartError,
    api,
    ehr,
    sandbox,
)
from healthchain.sandbox._config import MAX_CONCURRENCY
from healthchain.tracking import AsyncExperimentTracker, ExperimentStatus, StorageError
from healthchain.use_cases import BaseUseCase, ClinicalDecisionSupport

# -- COMPLETED -------------------------------------------------------------------------


@pytest.mark.parametrize("handler", [sync_ok, async_ok], ids=["sync-api", "async-api"])
@pytest.mark.parametrize("load", [load_sync, load_async], ids=["sync-ehr", "async-ehr"])
def test_a_run_with_valid_responses_is_completed(
    handler: Any, load: Any, any_storage: Storage
) -> None:
    cls = define(handler, load, storage_uri=any_storage.uri, num=4, tags={"env": "test", "n": 1})
    result, experiment = run(cls)

    assert result.status is ExperimentStatus.COMPLETED
    assert result.error is None
    kind = "sync" if handler is sync_ok else "async"
    assert [r.cards[0].summary for r in result.responses] == [f"{kind} patient-view"] * 4
    assert [o.index for o in result.outcomes] == [0, 1, 2, 3]
    assert all(o.status_code == 200 and o.latency_ms > 0 for o in result.outcomes)
    result.raise_for_status()

    assert experiment.id == result.experiment_id
    assert experiment.name == "Case"
    assert experiment.project == "sandbox-tests"
    assert experiment.status is ExperimentStatus.COMPLETED
    assert experiment.tags == {"env": "test", "n": 1}
    assert experiment.error is None
    assert experiment.end_time >= experiment.start_time
    assert any_storage.statuses() == ["COMPLETED"]


def test_running_is_committed_before_the_first_request(any_storage: Storage) -> None:
    seen: list[list[str]] = []

    def look(self: Any, request: CDSRequest) -> CDSResponse:
        seen.append(any_storage.statuses())  # another connection, in a worker thread
        return CDSResponse(cards=[])

    _, experiment = run(define(look, load_sync, storage_uri=any_storage.uri, num=1))
    assert seen == [["RUNNING"]]
    assert experiment.status is ExperimentStatus.COMPLETED


def test_per_request_records_are_stored_and_queryable_with_sql(any_storage: Storage) -> None:
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=25)
    with cls() as use_case:
        result = use_case.start_sandbox(save_data=False)
        assert use_case.experiment_tracker is not None
        stats = use_case.experiment_tracker.request_stats(result.experiment_id)  # type: ignore[arg-type]

    assert stats.count == 25
    assert stats.failures == 0
    assert stats.p50_ms is not None
    assert stats.p95_ms is not None
    assert 0 < stats.p50_ms <= stats.p95_ms
    rows = any_storage.query(
        "SELECT seq, status_code, error, latency_ms FROM requests "
        "WHERE experiment_id = ? ORDER BY seq",
        result.experiment_id,
    )
    assert [row[0] for row in rows] == list(range(25))
    assert {row[1] for row in rows} == {200}
    assert {row[2] for row in rows} == {None}
    assert any_storage.query(
        "SELECT count(*), count(error) FROM requests WHERE experiment_id = ?",
        result.experiment_id,
    ) == [(25, 0)]


def test_a_sync_handler_runs_in_a_worker_thread_and_an_async_one_on_the_loop(
    any_storage: Storage,
) -> None:
    seen: dict[str, Any] = {}

    def sync_handler(self: Any, request: CDSRequest) -> CDSResponse:
        seen["sync_thread"] = threading.get_ident()
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()
        return CDSResponse(cards=[])

    async def async_load(self: Any) -> CDSRequest:
        seen["loop_thread"] = threading.get_ident()
        return new_request()

    result, _ = run(define(sync_handler, async_load, storage_uri=any_storage.uri, num=1))
    assert result.status is ExperimentStatus.COMPLETED
    assert seen["sync_thread"] != seen["loop_thread"]
    assert seen["loop_thread"] != threading.get_ident()


def test_max_concurrency_bounds_the_requests_in_flight(any_storage: Storage) -> None:
    state = {"in_flight": 0, "peak": 0}
    three_in = anyio.Event()

    async def handler(self: Any, request: CDSRequest) -> CDSResponse:
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        if state["in_flight"] == 3:
            three_in.set()
        with anyio.fail_after(10):
            await three_in.wait()  # the first three wait for each other: they overlap
        state["in_flight"] -= 1
        return CDSResponse(cards=[])

    cls = define(
        handler, load_async, storage_uri=any_storage.uri, num=7, service={"max_concurrency": 3}
    )
    result, _ = run(cls)
    assert result.status is ExperimentStatus.COMPLETED
    assert state["peak"] == 3


def test_the_largest_max_concurrency_fits_a_1024_open_file_limit(
    sqlite_storage: Storage, tmp_path: Path
) -> None:
    # MAX_CONCURRENCY's reason, pinned: every request in flight at once, each holding a
    # client and a server socket, plus the database and the saved files, under the usual
    # Linux soft limit of 1,024 open files.
    import resource

    state = {"in_flight": 0, "peak": 0}
    all_in = anyio.Event()

    async def handler(self: Any, request: CDSRequest) -> CDSResponse:
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        if state["in_flight"] == MAX_CONCURRENCY:
            all_in.set()
        with anyio.fail_after(60):
            await all_in.wait()  # none answers until every one is in flight
        state["in_flight"] -= 1
        return CDSResponse(cards=[])

    cls = define(
        handler,
        load_async,
        storage_uri=sqlite_storage.uri,
        num=MAX_CONCURRENCY,
        service={"max_concurrency": MAX_CONCURRENCY},
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        result, _ = run(cls, save_data=True, save_dir=str(tmp_path))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert result.status is ExperimentStatus.COMPLETED, result.error
    assert state["peak"] == MAX_CONCURRENCY
    assert len(list((tmp_path / result.experiment_id).rglob("*.json"))) == 2 * MAX_CONCURRENCY


def test_partials_and_callable_objects_are_detected_as_sync_or_async() -> None:
    calls: list[tuple[str, bool]] = []

    def on_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    class AsyncHandler:
        async def __call__(self, request: CDSRequest) -> CDSResponse:
            calls.append(("async-object", on_loop()))
            return CDSResponse(cards=[])

    def sync_load(kind: str) -> CDSRequest:
        calls.append((kind, on_loop()))
        return new_request()

    class Case(ClinicalDecisionSupport):
        svc = api(AsyncHandler())
        load = ehr(workflow="patient-view", num=1)(functools.partial(sync_load, "sync-partial"))

    result, _ = run(sandbox(service_config={"port": 0})(Case))
    assert result.status is ExperimentStatus.COMPLETED
    assert sorted(calls) == [("async-object", True), ("sync-partial", False)]


def test_the_data_generator_gets_the_workflow_of_the_ehr_method(any_storage: Storage) -> None:
    hooks: list[str] = []

    @sandbox(experiment_config={"storage_uri": any_storage.uri}, service_config={"port": 0})
    class Discharge(ClinicalDecisionSupport):
        def __init__(self) -> None:
            self.data_generator = CdsDataGenerator()

        @ehr(workflow="encounter-discharge", num=2)
        def load(self) -> CdsFhirData:
            return self.data_generator.generate(random_seed=7)

        @api
        async def summarise(self, request: CDSRequest) -> CDSResponse:
            hooks.append(request.hook)
            return CDSResponse(cards=[card()])

    result, experiment = run(Discharge)
    assert result.status is ExperimentStatus.COMPLETED
    assert hooks == ["encounter-discharge"] * 2
    assert experiment.status is ExperimentStatus.COMPLETED


def test_only_the_data_generator_attribute_gets_the_workflow(any_storage: Storage) -> None:
    # The convention is self.data_generator; another generator the use case keeps (here
    # one for a different hook) is the user's and keeps its workflow.
    @sandbox(experiment_config={"storage_uri": any_storage.uri}, service_config={"port": 0})
    class Discharge(ClinicalDecisionSupport):
        def __init__(self) -> None:
            self.data_generator = CdsDataGenerator()
            self.orders = CdsDataGenerator("order-sign")

        @ehr(workflow="encounter-discharge", num=1)
        def load(self) -> CdsFhirData:
            return self.data_generator.generate(random_seed=7)

        @api
        async def summarise(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[card()])

    with Discharge() as use_case:
        result = use_case.start_sandbox(save_data=False)
        assert result.status is ExperimentStatus.COMPLETED
        assert use_case.data_generator.workflow == "encounter-discharge"
        assert use_case.orders.workflow == "order-sign"


def test_the_pipeline_is_recorded_as_components_and_config(any_storage: Storage) -> None:
    pipeline: Pipeline[Any, Any] = Pipeline()
    pipeline.add_node(str.strip, stage="preprocessing", name="clean")
    pipeline.add_node(str.upper, stage="formatting", name="shout")

    cls = define(
        async_ok, load_sync, storage_uri=any_storage.uri, num=1, extra={"pipeline": pipeline}
    )
    _, experiment = run(cls)
    assert experiment.pipeline_config == pipeline.config
    assert [(c.name, c.stage, c.position) for c in experiment.components] == [
        ("clean", "preprocessing", 0),
        ("shout", "formatting", 1),
    ]
    assert any_storage.query(
        "SELECT name, stage, position FROM pipeline_components WHERE experiment_id = ? "
        "ORDER BY position",
        experiment.id,
    ) == [("clean", "preprocessing", 0), ("shout", "formatting", 1)]


def test_without_experiment_config_nothing_is_recorded(tmp_path: Path) -> None:
    cls = define(async_ok, load_sync, storage_uri=None, num=2)
    result, experiment = run(cls, save_data=True, save_dir=str(tmp_path / "out"))
    assert result.status is ExperimentStatus.COMPLETED
    assert result.experiment_id is None
    assert experiment is None
    # an untracked run saves in a folder of its own too, named so it is not taken for an id
    (folder,) = (tmp_path / "out").iterdir()
    assert result.save_dir == folder
    assert re.fullmatch(r"untracked-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", folder.name)
    assert sorted(p.name for p in folder.iterdir()) == [
        "request_0000.json",
        "request_0001.json",
        "response_0000.json",
        "response_0001.json",
    ]
    again, _ = run(cls, save_data=True, save_dir=str(tmp_path / "out"))
    assert again.save_dir is not None and again.save_dir.parent == folder.parent
    assert again.save_dir != folder


# -- saved data ----------------------------------------------------------------------------


def test_save_data_writes_pretty_json_in_the_experiments_own_folder(
    any_storage: Storage, tmp_path: Path
) -> None:
    out = tmp_path / "nested" / "out"
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=3)
    result, experiment = run(cls, save_data=True, save_dir=str(out))

    folder = out / str(result.experiment_id)
    assert result.save_dir == folder.resolve()
    assert experiment is not None and experiment.files_dir == str(folder)
    assert any_storage.query(
        "SELECT files_dir FROM experiments WHERE id = ?", result.experiment_id
    ) == [(str(folder),)]
    assert [path.name for path in out.iterdir()] == [result.experiment_id]
    names = sorted(path.name for path in folder.iterdir())
    expected = sorted(
        f"{kind}_{index:04d}.json" for kind in ("request", "response") for index in range(3)
    )
    assert names == expected
    request_text = (folder / "request_0001.json").read_text()
    assert request_text.startswith('{\n  "hook": "patient-view"')
    response = json.loads((folder / "response_0002.json").read_text())
    assert response == {"cards": [card("async patient-view").model_dump(exclude_none=True)]}


def test_a_relative_save_dir_is_recorded_absolute(
    any_storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "here").symlink_to(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "here")
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=1)
    result, experiment = run(cls, save_data=True, save_dir="out")
    folder = tmp_path / "work" / "out" / str(result.experiment_id)
    assert experiment is not None and experiment.files_dir == str(folder)
    assert result.save_dir == folder
    assert sorted(p.name for p in folder.iterdir()) == ["request_0000.json", "response_0000.json"]


def test_save_data_false_writes_nothing(any_storage: Storage, tmp_path: Path) -> None:
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=1)
    result, experiment = run(cls, save_data=False, save_dir=str(tmp_path / "out"))
    assert result.save_dir is None
    assert experiment is not None and experiment.files_dir is None
    assert not (tmp_path / "out").exists()


# -- FAILED ------------------------------------------------------------------------------


def test_a_handler_exception_fails_the_experiment_with_a_summary(any_storage: Storage) -> None:
    def broken(self: Any, request: CDSRequest) -> CDSResponse:
        raise ValueError("model not loaded")

    result, experiment = run(define(broken, load_async, storage_uri=any_storage.uri, num=3))
    expected = (
        "3 of 3 requests failed; first (request 0): "
        "HTTP 500: handler 'svc' raised ValueError: model not loaded"
    )
    assert result.status is ExperimentStatus.FAILED
    assert result.error == expected
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == expected
    assert result.responses == []
    assert [o.status_code for o in result.failures] == [500, 500, 500]
    with pytest.raises(SandboxRunError, match="ended FAILED: 3 of 3 requests failed"):
        result.raise_for_status()
    assert any_storage.query("SELECT count(*), count(error) FROM requests") == [(3, 3)]


def test_some_failures_are_counted_and_the_first_reported(any_storage: Storage) -> None:
    async def flaky(self: Any, request: CDSRequest) -> CDSResponse:
        if request.context.patientId == "Patient/odd":
            raise RuntimeError("odd patient")
        return CDSResponse(cards=[])

    counter = iter(range(100))

    def alternate(self: Any) -> CDSRequest:
        request = new_request()
        if next(counter) % 2:
            request.context.patientId = "Patient/odd"
        return request

    cls = define(
        flaky, alternate, storage_uri=any_storage.uri, num=6, service={"max_concurrency": 1}
    )
    result, experiment = run(cls)
    assert result.status is ExperimentStatus.FAILED
    assert experiment.error == (
        "3 of 6 requests failed; first (request 1): HTTP 500: handler 'svc' raised "
        "RuntimeError: odd patient"
    )
    assert len(result.responses) == 3


def test_a_client_method_exception_fails_the_experiment(any_storage: Storage) -> None:
    def no_data(self: Any) -> CdsFhirData:
        raise FileNotFoundError("data/discharge_notes.csv")

    _result, experiment = run(define(async_ok, no_data, storage_uri=any_storage.uri, num=2))
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == (
        "2 of 2 requests failed; first (request 0): the @ehr method 'load' raised "
        "FileNotFoundError: data/discharge_notes.csv"
    )
    assert any_storage.query("SELECT status_code FROM requests ORDER BY seq") == [(None,), (None,)]


def test_a_client_method_returning_the_wrong_type_fails_the_experiment(
    any_storage: Storage,
) -> None:
    async def wrong(self: Any) -> Any:
        return {"context": {}}

    _, experiment = run(define(async_ok, wrong, storage_uri=any_storage.uri, num=1))
    assert experiment.status is ExperimentStatus.FAILED
    assert "the @ehr method 'load' raised TypeError" in experiment.error
    assert "returned dict, expected CdsFhirData" in experiment.error


def test_a_handler_returning_the_wrong_type_fails_the_experiment(any_storage: Storage) -> None:
    async def wrong(self: Any, request: CDSRequest) -> Any:
        return {"cards": []}

    _, experiment = run(define(wrong, load_sync, storage_uri=any_storage.uri, num=1))
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == (
        "1 of 1 requests failed; first (request 0): HTTP 500: handler 'svc' returned dict, "
        "expected CDSResponse"
    )


def test_an_invalid_response_fails_the_experiment_naming_the_field(any_storage: Storage) -> None:
    async def too_long(self: Any, request: CDSRequest) -> CDSResponse:
        bad = Card.model_construct(summary="x" * 141, indicator="info", source=Source(label="s"))
        return CDSResponse.model_construct(cards=[bad])

    result, experiment = run(define(too_long, load_sync, storage_uri=any_storage.uri, num=1))
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == (
        "1 of 1 requests failed; first (request 0): invalid response: 1 error; first at "
        f"cards.0.summary: got '{'x' * 59}... (141 characters); String should have at "
        "most 139 characters"
    )
    assert result.outcomes[0].status_code == 200


def test_a_request_timeout_fails_the_experiment(any_storage: Storage) -> None:
    async def slow(self: Any, request: CDSRequest) -> CDSResponse:
        await anyio.sleep(1)  # the behaviour under test: longer than the client's timeout
        return CDSResponse(cards=[])

    cls = define(slow, load_sync, storage_uri=any_storage.uri, num=1, service={"timeout": 0.1})
    result, experiment = run(cls)
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == (
        "1 of 1 requests failed; first (request 0): no response within 0.1 s (timeout)"
    )
    assert result.outcomes[0].status_code is None


# -- errors before anything runs ---------------------------------------------------------


def test_the_quick_start_class_without_handlers_fails_clearly_before_any_row(
    any_storage: Storage,
) -> None:
    @sandbox(experiment_config={"storage_uri": any_storage.uri, "project_name": "my_project"})
    class MyExperiment(BaseUseCase):
        def __init__(self) -> None:
            pass

    with MyExperiment() as use_case:
        assert use_case.experiment_tracker is not None
        with pytest.raises(SandboxDefinitionError, match="MyExperiment has no @api handler"):
            use_case.start_sandbox()
    assert any_storage.statuses() == []


def test_a_missing_ehr_method_fails_before_any_row(any_storage: Storage) -> None:
    @sandbox(experiment_config={"storage_uri": any_storage.uri})
    class NoClient(ClinicalDecisionSupport):
        svc = api(async_ok)

    with (
        NoClient() as use_case,
        pytest.raises(
            SandboxDefinitionError, match=r"NoClient has no @ehr method.*@healthchain.ehr"
        ),
    ):
        use_case.start_sandbox()
    assert any_storage.statuses() == []


def test_a_port_in_use_fails_before_any_row(any_storage: Storage) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cls = define(async_ok, load_sync, storage_uri=any_storage.uri, service={"port": port})
        with pytest.raises(ServiceStartError, match=rf"port {port} on 127.0.0.1 is already in use"):
            run(cls)
    assert any_storage.statuses() == []


def test_an_unresolvable_host_fails_before_any_row(any_storage: Storage) -> None:
    cls = define(
        async_ok, load_sync, storage_uri=any_storage.uri, service={"host": "no-such-host.invalid"}
    )
    with pytest.raises(ServiceStartError, match="cannot resolve service host 'no-such-host"):
        run(cls)
    assert any_storage.statuses() == []


def test_an_unusable_save_dir_fails_before_any_row(any_storage: Storage, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri)
    with pytest.raises(SandboxConfigError, match=r"save_dir '.*a-file' cannot hold"):
        run(cls, save_data=True, save_dir=str(blocker))
    assert any_storage.statuses() == []


def test_a_bad_service_id_fails_before_any_row(any_storage: Storage) -> None:
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri)
    with pytest.raises(SandboxConfigError, match="service_id must be a non-empty string"):
        run(cls, service_id="")
    assert any_storage.statuses() == []


def assert_released(url: str) -> None:
    """Nothing listens at ``url`` any more, and its port can be bound again."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port))):
        pass
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((host, int(port)))
        again.listen()


def test_the_service_is_stopped_when_the_run_returns(any_storage: Storage) -> None:
    result, _ = run(define(async_ok, load_sync, storage_uri=any_storage.uri, num=1))
    assert result.service_url is not None
    assert_released(result.service_url)


def test_a_custom_service_id_is_served(any_storage: Storage) -> None:
    # The app the sandbox served, wrapped to record the paths its requests went to.
    served: list[Any] = []
    paths: list[tuple[str, str]] = []

    def build_app(self: Any, service: Any, **options: Any) -> Any:
        app = ClinicalDecisionSupport.build_app(self, service, **options)
        served.append(app)

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                paths.append((scope["method"], scope["path"]))
            await app(scope, receive, send)

        return recording

    cls = define(
        async_ok, load_sync, storage_uri=any_storage.uri, num=2, extra={"build_app": build_app}
    )
    result, _ = run(cls, service_id="x-1")
    assert result.status is ExperimentStatus.COMPLETED
    assert paths == [("POST", "/cds-services/x-1")] * 2

    async def discover() -> Any:
        transport = httpx.ASGITransport(app=served[0])
        async with httpx.AsyncClient(transport=transport, base_url="http://cds") as client:
            return (await client.get("/cds-services")).json()

    (listed,) = anyio.run(discover)["services"]
    assert listed["id"] == "x-1"


# -- async entry point and cancellation -------------------------------------------------


@pytest.fixture
def tracked_case(any_storage: Storage) -> Any:
    """Built outside the event loop: opening the sync tracker waits for its thread."""
    started = anyio.Event()

    async def wait_forever(self: Any, request: CDSRequest) -> CDSResponse:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    cls = define(wait_forever, load_sync, storage_uri=any_storage.uri, num=3)
    with cls() as use_case:
        yield use_case, started


@pytest.mark.anyio
async def test_astart_sandbox_runs_on_the_callers_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def handler(self: Any, request: CDSRequest) -> CDSResponse:
        loops.append(asyncio.get_running_loop())
        return CDSResponse(cards=[])

    cls = define(handler, load_async, storage_uri=None, num=2)
    with cls() as use_case:
        result = await use_case.astart_sandbox(save_data=False)
    assert result.status is ExperimentStatus.COMPLETED
    assert loops == [asyncio.get_running_loop()] * 2


@pytest.mark.anyio
async def test_astart_sandbox_records_the_experiment(any_storage: Storage) -> None:
    cls = define(async_ok, load_async, storage_uri=any_storage.uri, num=2, tags={"k": "v"})
    # Opening the instance's sync tracker waits for its thread: do it off the loop.
    use_case = await anyio.to_thread.run_sync(cls)
    try:
        result = await use_case.astart_sandbox(save_data=False)
    finally:
        await anyio.to_thread.run_sync(use_case.close)
    async with AsyncExperimentTracker(any_storage.uri) as tracker:
        experiment = await tracker.get_experiment(result.experiment_id)  # type: ignore[arg-type]
        stats = await tracker.request_stats(experiment.id)
    assert experiment.status is ExperimentStatus.COMPLETED
    assert experiment.tags == {"k": "v"}
    assert stats.count == 2


@pytest.mark.anyio
async def test_cancelling_a_run_records_interrupted_and_stops_the_service(
    tracked_case: Any, any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="healthchain.sandbox")
    use_case, started = tracked_case
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(use_case.astart_sandbox, save_data=False))
        await started.wait()
        tg.cancel_scope.cancel()

    (url,) = [
        str(record.args[0])  # type: ignore[index]
        for record in caplog.records
        if record.msg == "Sandbox service listening on %s"
    ]
    await anyio.to_thread.run_sync(assert_released, url)

    async with AsyncExperimentTracker(any_storage.uri) as tracker:
        (experiment,) = await tracker.list_experiments()
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == "cancelled after 0 of 3 requests"
    assert experiment.end_time is not None


def test_start_sandbox_works_where_an_event_loop_is_running(
    any_storage: Storage, blockbuster: BlockBuster
) -> None:
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=2)

    async def notebook_cell(use_case: BaseUseCase) -> SandboxResult:
        # A notebook cell blocks its loop by design: let this one wait.
        blockbuster.deactivate()
        try:
            return use_case.start_sandbox(save_data=False)
        finally:
            blockbuster.activate()

    with cls() as use_case:
        result = asyncio.run(notebook_cell(use_case))
    assert result.status is ExperimentStatus.COMPLETED


# -- terminal progress and storage failures ---------------------------------------------


def test_a_progress_bar_is_drawn_only_on_a_terminal(
    any_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    master, replica = os.openpty()
    with os.fdopen(replica, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        result, _ = run(define(async_ok, load_sync, storage_uri=any_storage.uri, num=5))
        terminal.flush()
    os.set_blocking(master, False)
    drawn = os.read(master, 1 << 16)
    os.close(master)
    assert result.status is ExperimentStatus.COMPLETED
    assert b"Sending requests" in drawn

    # Not a terminal (as when stderr is redirected): nothing is drawn at all.
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)
    result, _ = run(define(async_ok, load_sync, storage_uri=any_storage.uri, num=5))
    assert result.status is ExperimentStatus.COMPLETED
    assert redirected.getvalue() == ""


def test_a_storage_failure_while_recording_requests_fails_the_run(any_storage: Storage) -> None:
    def drop_requests_table(self: Any, request: CDSRequest) -> CDSResponse:
        # Runs in a worker thread: breaks the storage under the tracker's feet.
        any_storage.drop_table("requests")
        return CDSResponse(cards=[])

    cls = define(drop_requests_table, load_sync, storage_uri=any_storage.uri, num=2)
    with pytest.raises(StorageError, match="requests"):
        run(cls)
    ((status, error),) = any_storage.query("SELECT status, error FROM experiments")
    assert status == "FAILED"
    assert "StorageError" in error
