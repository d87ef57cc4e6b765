"""AsyncExperimentTracker against a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers.pipelines import PIPELINE
from helpers.storage import Storage

from healthchain.tracking import (
    AsyncExperimentTracker,
    Component,
    ExperimentNotFoundError,
    ExperimentStateError,
    ExperimentStatus,
    InvalidFilterError,
    InvalidInputError,
    RequestRecord,
    StorageError,
    TrackerClosedError,
    TrackerError,
)
from healthchain.tracking._update_ops import EndOp

pytestmark = pytest.mark.anyio


async def count_rows(tracker: AsyncExperimentTracker) -> int:
    return len(await tracker.list_experiments())


async def test_lifecycle_records_everything(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(
        any_storage_uri, project_name="summaries", tags={"environment": "production"}
    ) as tracker:
        experiment_id = await tracker.start_experiment(
            "discharge",
            tags={"model": "zephyr", "epochs": 3},
            pipeline_config={"template": "cards.json", "max_tokens": 512},
            components=PIPELINE,
        )
        running = await tracker.get_experiment(experiment_id)
        await tracker.end_experiment(experiment_id)
        done = await tracker.get_experiment(experiment_id)

    assert str(uuid.UUID(experiment_id)) == experiment_id  # UUID string with hyphens
    assert uuid.UUID(experiment_id).version == 7
    assert running.status is ExperimentStatus.RUNNING and running.end_time is None
    assert running.duration is None
    assert done.status is ExperimentStatus.COMPLETED and f"{done.status}" == "COMPLETED"
    assert (done.name, done.project) == ("discharge", "summaries")
    assert done.tags == {"environment": "production", "model": "zephyr", "epochs": 3}
    assert done.pipeline_config == {"template": "cards.json", "max_tokens": 512}
    assert done.components == (
        Component("preprocess", "function", "pre", 0),
        Component("llm", "ChatModel", "inference", 1),
        Component("cards", "function", "post", 2),
    )
    assert done.start_time.tzinfo is not None and done.start_time.utcoffset() == timedelta(0)
    assert done.end_time is not None and done.end_time >= done.start_time
    assert isinstance(done.end_time - done.start_time, timedelta)
    assert done.duration == done.end_time - done.start_time
    assert abs(datetime.now(UTC) - done.start_time) < timedelta(minutes=1)
    assert done.error is None and done.pid is not None and done.host


async def test_default_name_and_experiment_tags_override_tracker_tags(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri, tags={"env": "dev", "team": "a"}) as tracker:
        experiment_id = await tracker.start_experiment(tags={"env": "prod"})
        experiment = await tracker.get_experiment(experiment_id)
    assert experiment.tags == {"env": "prod", "team": "a"}
    assert experiment.name == f"healthchain-{experiment_id[-8:]}"


async def test_end_with_failure_and_error_text(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.end_experiment(experiment_id, "failed", error=ValueError("bad card"))
        experiment = await tracker.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == "ValueError: bad card"


async def test_list_filters_order_and_paging(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri, project_name="p1") as tracker:
        ids = []
        for i in range(6):
            environment = "production" if i % 2 == 0 else "staging"
            experiment_id = await tracker.start_experiment(
                f"run{i}", tags={"environment": environment, "i": i, "nested": {"k": [i]}}
            )
            ids.append(experiment_id)
        for experiment_id in ids[:4]:
            await tracker.end_experiment(experiment_id)
        other = AsyncExperimentTracker(any_storage_uri, project_name="p2")
        async with other:
            other_id = await other.start_experiment("run0", tags={"environment": "production"})

        everything = await tracker.list_experiments()
        assert [e.id for e in everything] == [other_id, *reversed(ids)]  # newest first
        assert [e.start_time for e in everything] == sorted(
            (e.start_time for e in everything), reverse=True
        )

        production = await tracker.list_experiments({"tags": {"environment": "production"}})
        assert {e.id for e in production} == {ids[0], ids[2], ids[4], other_id}

        both = await tracker.list_experiments(
            {"tags": {"environment": "production", "i": 2, "nested": {"k": [2]}}}
        )
        assert [e.id for e in both] == [ids[2]]
        assert await tracker.list_experiments({"tags": {"i": "2"}}) == []  # 2 is not "2"

        running = await tracker.list_experiments({"status": "RUNNING"})
        assert {e.id for e in running} == {ids[4], ids[5]}  # closing `other` ended other_id
        several = await tracker.list_experiments(
            {"status": [ExperimentStatus.COMPLETED, "running"], "project": "p1"}
        )
        assert len(several) == 6

        by_name = await tracker.list_experiments({"name": "run0"})
        assert {e.id for e in by_name} == {ids[0], other_id}
        assert [e.id for e in await tracker.list_experiments({"project": "p2"})] == [other_id]

        page = await tracker.list_experiments(limit=2, offset=1)
        assert [e.id for e in page] == [ids[5], ids[4]]
        assert await tracker.list_experiments(limit=0) == []


async def test_list_attaches_components_per_experiment(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        with_pipeline = await tracker.start_experiment(components=PIPELINE)
        without = await tracker.start_experiment()
        listed = {e.id: e for e in await tracker.list_experiments(limit=5)}
    assert [c.name for c in listed[with_pipeline].components] == ["preprocess", "llm", "cards"]
    assert listed[without].components == ()


async def test_listed_records_share_no_pipeline_config(any_storage_uri: str) -> None:
    """A config text met again in one list is decoded once and copied: each record still
    has its own value, flat or nested, equal to what was logged."""
    flat = {"batch_size": 32, "temperature": 0.2}
    nested = {"model": {"name": "m", "layers": [1, 2]}}
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        for config in (flat, nested, flat, nested, flat, None, None):
            await tracker.start_experiment(pipeline_config=config)
        listed = await tracker.list_experiments()
    configs = [e.pipeline_config for e in reversed(listed)]
    assert configs == [flat, nested, flat, nested, flat, None, None]
    assert all(e.start_time.tzinfo is UTC for e in listed)
    assert configs[0] is not configs[2] and configs[2] is not configs[4]
    assert configs[1] is not configs[3]
    assert configs[1]["model"] is not configs[3]["model"]  # type: ignore[index]
    configs[0]["batch_size"] = 64  # type: ignore[index]
    configs[1]["model"]["layers"].append(3)  # type: ignore[index]
    assert configs[2:4] == [flat, nested]


async def test_track_maps_outcomes_to_statuses(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        async with tracker.track("ok") as ok_id:
            pass
        with pytest.raises(ZeroDivisionError):
            async with tracker.track("boom") as failed_id:
                1 / 0  # noqa: B018

        started = asyncio.Event()
        holder: list[str] = []

        async def body() -> None:
            async with tracker.track("cancelled") as experiment_id:
                holder.append(experiment_id)
                started.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(body())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        statuses = {
            experiment_id: await tracker.get_experiment(experiment_id)
            for experiment_id in (ok_id, failed_id, holder[0])
        }
    assert statuses[ok_id].status is ExperimentStatus.COMPLETED
    assert statuses[failed_id].status is ExperimentStatus.FAILED
    assert statuses[failed_id].error == "ZeroDivisionError: division by zero"
    assert statuses[holder[0]].status is ExperimentStatus.INTERRUPTED
    assert statuses[holder[0]].end_time is not None


async def test_track_keyboard_interrupt_is_interrupted(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        with pytest.raises(KeyboardInterrupt):
            async with tracker.track() as experiment_id:
                raise KeyboardInterrupt
        experiment = await tracker.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == "KeyboardInterrupt"


def _wal_commits(db: Path) -> int:
    """Commits in a SQLite write-ahead log: frames whose header records the database size."""
    wal = Path(f"{db}-wal").read_bytes()
    page_size, salt = int.from_bytes(wal[8:12], "big"), wal[16:24]
    commits = 0
    for offset in range(32, len(wal) - 24, 24 + page_size):
        if wal[offset + 8 : offset + 16] != salt:
            break  # left over from before the log was last restarted
        commits += int.from_bytes(wal[offset + 4 : offset + 8], "big") != 0
    return commits


def _pg_write_transactions(uri: str) -> int:
    """Transactions that last wrote the experiments and their tags (each row's ``xmin``)."""
    storage = Storage("postgresql", uri)
    (starts,) = storage.query("SELECT count(DISTINCT xmin::text) FROM experiment_tags")[0]
    (ends,) = storage.query("SELECT count(DISTINCT xmin::text) FROM experiments")[0]
    return int(starts) + int(ends)


async def test_concurrent_writers_share_commits_and_lose_nothing(any_storage_uri: str) -> None:
    sqlite_file = Path(any_storage_uri.removeprefix("sqlite:///"))
    is_sqlite = any_storage_uri.startswith("sqlite")
    async with AsyncExperimentTracker(any_storage_uri) as tracker:

        async def lifecycle(i: int) -> str:
            experiment_id = await tracker.start_experiment(
                tags={"worker": i % 8}, components=PIPELINE
            )
            await tracker.end_experiment(experiment_id)
            return experiment_id

        await tracker.list_experiments()  # opened: the schema's own commits come before
        before = await anyio.to_thread.run_sync(_wal_commits, sqlite_file) if is_sqlite else 0
        ids = await asyncio.gather(*(lifecycle(i) for i in range(200)))
        if is_sqlite:
            commits = await anyio.to_thread.run_sync(_wal_commits, sqlite_file) - before
        listed = await tracker.list_experiments()
        worker3 = await tracker.list_experiments({"tags": {"worker": 3}})
    if not is_sqlite:
        commits = await anyio.to_thread.run_sync(_pg_write_transactions, any_storage_uri)
    # 400 operations (200 starts, 200 ends) went in far fewer transactions
    assert 0 < commits < 100, commits
    assert len(set(ids)) == 200
    assert {e.id for e in listed} == set(ids)
    # newest first is start order, even for starts queued in one batch
    assert listed == sorted(listed, key=lambda e: (e.start_time, e.id), reverse=True)
    assert all(e.status is ExperimentStatus.COMPLETED for e in listed)
    assert all(len(e.components) == len(PIPELINE) for e in listed)
    assert len(worker3) == 25


async def test_one_bad_operation_does_not_fail_its_batch(
    any_storage_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        ids = [await tracker.start_experiment() for _ in range(20)]
        missing = str(uuid.uuid4())
        # What the writer hands the backend at once: the ends must form one batch.
        backend = tracker._backend
        assert backend is not None
        batches: list[list[str]] = []
        write = backend.write

        async def recording(ops: Any) -> Any:
            batches.append([op.row["b_id"] for op in ops if isinstance(op, EndOp)])
            return await write(ops)

        monkeypatch.setattr(backend, "write", recording)
        results = await asyncio.gather(
            *(tracker.end_experiment(i) for i in ids[:10]),
            tracker.end_experiment(missing),
            *(tracker.end_experiment(i) for i in ids[10:]),
            return_exceptions=True,
        )
        experiments = [await tracker.get_experiment(i) for i in ids]
    assert any(missing in batch and len(batch) > 1 for batch in batches), batches
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ExperimentNotFoundError)
    assert missing in str(errors[0])
    assert all(e.status is ExperimentStatus.COMPLETED for e in experiments)


async def test_ending_twice_raises_and_keeps_the_first_outcome(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.end_experiment(experiment_id, ExperimentStatus.FAILED, error="first")
        before = await tracker.get_experiment(experiment_id)
        with pytest.raises(ExperimentStateError, match=r"already ended as FAILED") as info:
            await tracker.end_experiment(experiment_id)
        after = await tracker.get_experiment(experiment_id)
    assert experiment_id in str(info.value)
    assert isinstance(info.value, TrackerError)
    assert after == before


async def test_unknown_ids_raise_not_found(any_storage_uri: str) -> None:
    missing = str(uuid.uuid4())
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        with pytest.raises(ExperimentNotFoundError, match=re.escape(repr(missing))) as info:
            await tracker.get_experiment(missing)
        assert isinstance(info.value, LookupError)
        with pytest.raises(ExperimentNotFoundError, match=re.escape(repr(missing))):
            await tracker.end_experiment(missing)
        with pytest.raises(ExperimentNotFoundError):
            await tracker.request_stats(missing)
        with pytest.raises(ExperimentNotFoundError):
            await tracker.log_requests(missing, [RequestRecord(0, datetime.now(UTC), 1.0, 200)])
        assert await count_rows(tracker) == 0


async def test_record_writes_check_the_id_then_the_values_then_write(
    any_storage_uri: str,
) -> None:
    """``log_requests`` and ``log_params`` on a read-only tracker: an unusable id is not
    found before its values are looked at, bad values are refused and none are a no-op,
    both before the writer is asked for (which a read-only tracker refuses)."""
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
    record = RequestRecord(0, datetime.now(UTC), 1.0, 200)
    async with AsyncExperimentTracker(any_storage_uri, read_only=True) as reader:
        calls: list[tuple[Any, object, object]] = [
            (reader.log_requests, [], [record]),
            (reader.log_params, {}, {"p": 1}),
        ]
        for call, empty, good in calls:
            with pytest.raises(ExperimentNotFoundError, match=r"'x{40}'"):
                await call("x" * 40, "bad")  # longer than any id
            with pytest.raises(InvalidInputError, match="'bad'"):
                await call(experiment_id, "bad")
            await call(experiment_id, empty)
            with pytest.raises(StorageError, match="read_only=True"):
                await call(experiment_id, good)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"tags": {"ok": 1, "when": datetime(2026, 1, 1)}}, "'when'"),
        ({"tags": {"ok": 1, "score": float("nan")}}, "'score'"),
        ({"tags": {1: "one"}}, "1"),
        ({"tags": {"": "empty"}}, "''"),
        ({"tags": ["environment", "production"]}, "['environment', 'production']"),
        ({"pipeline_config": {"fn": print}}, "pipeline_config"),
        ({"pipeline_config": "chain"}, "'chain'"),
        ({"components": [{"name": "llm", "kind": "x"}]}, "'kind'"),
        ({"components": [{"type": "x"}]}, "components[0]['name']"),
        ({"components": [{"name": "a", "stage": 3}]}, "'stage'"),
        ({"components": "llm"}, "'llm'"),
        ({"components": ["llm"]}, "components[0]"),
        ({"name": ""}, "''"),
    ],
)
async def test_bad_start_input_names_the_value_and_writes_nothing(
    storage_uri: str, kwargs: dict[str, object], named: str
) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        with pytest.raises(InvalidInputError) as info:
            await tracker.start_experiment(**kwargs)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert named in str(info.value)
        assert await count_rows(tracker) == 0


@pytest.mark.parametrize(
    ("filters", "error", "named"),
    [
        ({"tag": {"a": 1}}, InvalidFilterError, "'tag'"),
        ({"status": "DONE"}, InvalidFilterError, "'DONE'"),
        ({"status": ["RUNNING", "finished"]}, InvalidFilterError, "'finished'"),
        ({"tags": {"k": object}}, InvalidFilterError, "'k'"),
        ({"tags": "environment=production"}, InvalidFilterError, "'environment=production'"),
        ({"name": 3}, InvalidFilterError, "'name'"),
        ("status=RUNNING", InvalidFilterError, "'status=RUNNING'"),
    ],
)
async def test_bad_filters_name_the_offender(
    storage_uri: str, filters: object, error: type[Exception], named: str
) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        await tracker.start_experiment()
        with pytest.raises(error) as info:
            await tracker.list_experiments(filters)  # type: ignore[arg-type]
    assert named in str(info.value)
    assert isinstance(info.value, ValueError)


async def test_bad_end_status_and_paging_arguments(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        with pytest.raises(InvalidInputError, match="'RUNNING' is not a final status"):
            await tracker.end_experiment(experiment_id, ExperimentStatus.RUNNING)
        with pytest.raises(InvalidInputError, match="'PAUSED'"):
            await tracker.end_experiment(experiment_id, "PAUSED")
        with pytest.raises(InvalidInputError, match="error must be"):
            await tracker.end_experiment(experiment_id, error=42)  # type: ignore[arg-type]
        with pytest.raises(
            InvalidInputError, match=r"limit must be an integer from 0 to .*, got -1"
        ):
            await tracker.list_experiments(limit=-1)
        with pytest.raises(
            InvalidInputError, match=r"offset must be an integer from 0 to .*, got '2'"
        ):
            await tracker.list_experiments(offset="2")  # type: ignore[arg-type]
        assert (await tracker.get_experiment(experiment_id)).status is ExperimentStatus.RUNNING


async def test_a_refused_end_is_reported_before_the_id_and_leaves_the_experiment_open(
    any_storage_uri: str,
) -> None:
    tracker = AsyncExperimentTracker(any_storage_uri)
    experiment_id = await tracker.start_experiment()
    with pytest.raises(InvalidInputError, match="'RUNNING' is not a final status"):
        await tracker.end_experiment("x" * 37, "RUNNING")  # an id too long to exist
    with pytest.raises(InvalidInputError, match="error must be"):
        await tracker.end_experiment(experiment_id, error=42)  # type: ignore[arg-type]
    await tracker.aclose()  # still open after the refused end, so the close ends it
    async with AsyncExperimentTracker(any_storage_uri) as reader:
        ended = await reader.get_experiment(experiment_id)
    assert ended.status is ExperimentStatus.INTERRUPTED
    assert ended.error == "the tracker was closed while the experiment was open"


async def test_closing_ends_open_experiments_interrupted(
    any_storage_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = AsyncExperimentTracker(any_storage_uri)
    started = await tracker.start_experiment("started, never ended")
    elsewhere = await tracker.start_experiment("ended by another tracker")
    async with AsyncExperimentTracker(any_storage_uri) as other:
        await other.end_experiment(elsewhere)
    inside: dict[str, str] = {}
    entered, release = anyio.Event(), anyio.Event()

    errors: list[Exception] = []

    async def block(name: str, fail: bool) -> None:
        try:
            async with tracker.track(name) as experiment_id:
                inside[name] = experiment_id
                if len(inside) == 2:
                    entered.set()
                await release.wait()
                if fail:
                    raise ValueError("left after the close")
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(block, "ok", False)
        tg.start_soon(block, "fails", True)
        await entered.wait()
        await tracker.aclose()
        release.set()  # the blocks end after the close: nothing more is recorded
    # The body's own error still propagates, and nothing else does.
    assert [repr(e) for e in errors] == [repr(ValueError("left after the close"))]

    async with AsyncExperimentTracker(any_storage_uri) as reader:
        ended = {i: await reader.get_experiment(i) for i in (started, *inside.values())}
        assert (await reader.get_experiment(elsewhere)).status is ExperimentStatus.COMPLETED
    for experiment in ended.values():
        assert experiment.status is ExperimentStatus.INTERRUPTED
        assert experiment.error == "the tracker was closed while the experiment was open"
        assert experiment.end_time is not None
    # Under PYTHONDEVMODE asyncio warns of any callback that ran over 0.1 s, which a loaded
    # machine causes: a timing diagnostic of the loop, not something the close logged.
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and not (r.name == "asyncio" and r.msg.startswith("Executing"))
    ]


async def test_a_start_being_written_when_the_tracker_closes_is_ended_too(
    any_storage_uri: str,
) -> None:
    tracker = AsyncExperimentTracker(any_storage_uri)
    await tracker.list_experiments()  # open
    starting = asyncio.ensure_future(tracker.start_experiment("racing the close"))
    await asyncio.sleep(0)  # queued, not yet committed
    await tracker.aclose()
    experiment_id = await starting  # the close wrote it first ...
    async with AsyncExperimentTracker(any_storage_uri) as reader:
        experiment = await reader.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.INTERRUPTED  # ... then its end
    assert experiment.error == "the tracker was closed while the experiment was open"


async def test_closed_tracker_refuses_every_call(storage_uri: str) -> None:
    tracker = AsyncExperimentTracker(storage_uri)
    async with tracker:
        experiment_id = await tracker.start_experiment()
    await tracker.aclose()  # idempotent
    for call in (
        tracker.start_experiment(),
        tracker.end_experiment(experiment_id),
        tracker.get_experiment(experiment_id),
        tracker.list_experiments(),
        tracker.reap_stale(),
    ):
        with pytest.raises(TrackerClosedError, match="closed"):
            await call
    with pytest.raises(TrackerClosedError):
        async with tracker:
            pass


async def test_unclosed_tracker_warns(storage_uri: str) -> None:
    tracker = AsyncExperimentTracker(storage_uri)
    await tracker.start_experiment()
    await tracker.aclose()  # a closed one is silent ...
    gc.collect()

    leaked = AsyncExperimentTracker(storage_uri)
    await leaked.list_experiments()
    with pytest.warns(ResourceWarning, match="unclosed"):
        leaked.__del__()
    await leaked.aclose()


def test_tracker_belongs_to_one_event_loop(storage_uri: str) -> None:
    tracker = AsyncExperimentTracker(storage_uri)

    async def use() -> None:
        await tracker.list_experiments()

    async def close() -> None:
        await tracker.aclose()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(use())
        with pytest.raises(TrackerClosedError, match="another event loop"):
            asyncio.run(use())
        loop.run_until_complete(close())
    finally:
        loop.close()


async def test_heartbeat_refreshes_running_rows_only(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri, heartbeat_interval=0.05) as tracker:
        running = await tracker.start_experiment()
        ended = await tracker.start_experiment()
        await tracker.end_experiment(ended)
        first = (await tracker.get_experiment(running)).heartbeat_at
        ended_beat = (await tracker.get_experiment(ended)).heartbeat_at
        deadline = asyncio.get_running_loop().time() + 5
        while (await tracker.get_experiment(running)).heartbeat_at == first:
            assert asyncio.get_running_loop().time() < deadline, "no heartbeat within 5 s"
            await asyncio.sleep(0.02)
        assert (await tracker.get_experiment(ended)).heartbeat_at == ended_beat
        assert await tracker.reap_stale() == []  # it beats: never reaped


async def test_requests_are_logged_and_summarised(any_storage_uri: str) -> None:
    start = datetime.now(UTC)
    records = [
        RequestRecord(i, start + timedelta(milliseconds=i), float(i + 1), 200, None)
        for i in range(20)
    ]
    records[7] = RequestRecord(7, start, 8.0, 500, "HTTPStatusError: 500")
    records[9] = RequestRecord(9, start, 10.0, None, "ReadTimeout")
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        empty = await tracker.request_stats(experiment_id)
        await tracker.log_requests(experiment_id, records[:10])
        await tracker.log_requests(experiment_id, records[10:])
        await tracker.log_requests(experiment_id, [])
        stats = await tracker.request_stats(experiment_id)
        with pytest.raises(InvalidInputError, match="already logged"):
            await tracker.log_requests(experiment_id, records[:1])
        with pytest.raises(InvalidInputError, match="timezone-aware"):
            await tracker.log_requests(
                experiment_id, [RequestRecord(99, datetime(2026, 1, 1), 1.0, 200)]
            )
        with pytest.raises(InvalidInputError, match=r"records\[0\] must be a RequestRecord"):
            await tracker.log_requests(experiment_id, [(1, start, 1.0, 200, None)])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError, match="records must be a sequence of RequestRecord"):
            await tracker.log_requests(experiment_id, records[0])  # type: ignore[arg-type]
        assert (await tracker.request_stats(experiment_id)) == stats
        listed = await tracker.list_requests(experiment_id)
        with pytest.raises(ExperimentNotFoundError):
            await tracker.list_requests(str(uuid.uuid4()))
    assert [r.index for r in listed] == list(range(20))
    assert listed[7] == records[7]
    assert listed[0].start_time == start
    assert (empty.count, empty.failures, empty.p50_ms, empty.p95_ms) == (0, 0, None, None)
    assert (stats.count, stats.failures) == (20, 2)
    assert (stats.p50_ms, stats.p95_ms) == (10.0, 19.0)


async def test_delete_removes_experiment_and_its_rows(storage_uri: str, db_path: Path) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        keep = await tracker.start_experiment(tags={"a": 1}, components=PIPELINE)
        drop = await tracker.start_experiment(tags={"a": 1}, components=PIPELINE)
        await tracker.log_requests(drop, [RequestRecord(0, datetime.now(UTC), 1.0, 200)])
        assert await tracker.delete_experiments([drop, str(uuid.uuid4())]) == 1
        assert [e.id for e in await tracker.list_experiments({"tags": {"a": 1}})] == [keep]
        with pytest.raises(
            InvalidInputError, match=r"experiment_ids\[0\] must be a string .*, got int 3"
        ):
            await tracker.delete_experiments([3])  # type: ignore[list-item]

    def leftovers() -> dict[str, int]:
        conn = sqlite3.connect(db_path)
        try:
            return {
                table: conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE experiment_id = ?", (drop,)
                ).fetchone()[0]
                for table in ("experiment_tags", "pipeline_components", "requests")
            }
        finally:
            conn.close()

    assert await anyio.to_thread.run_sync(leftovers) == {
        "experiment_tags": 0,
        "pipeline_components": 0,
        "requests": 0,
    }


async def test_cancelled_start_does_not_leave_a_running_row(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        await tracker.list_experiments()  # opened: the start below is queued at once
        task = asyncio.create_task(tracker.start_experiment("orphan"))
        await asyncio.sleep(0)  # queued, not yet committed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            rows = await tracker.list_experiments({"name": "orphan"})
            if rows and rows[0].status is not ExperimentStatus.RUNNING:
                break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
    assert rows[0].status is ExperimentStatus.INTERRUPTED
    assert rows[0].error is not None and "cancelled" in rows[0].error


async def _connections(storage: Storage) -> set[int]:
    """PostgreSQL backends connected to the test database, other than the one asking."""
    rows = await anyio.to_thread.run_sync(
        storage.query,
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return {pid for (pid,) in rows}


@pytest.mark.parametrize("how", ["cancel-scope", "task-cancel"])
async def test_closing_while_cancelled_writes_what_was_queued_and_releases_storage(
    any_storage: Storage, how: str
) -> None:
    before = await _connections(any_storage) if any_storage.kind == "postgresql" else set()
    tracker = AsyncExperimentTracker(any_storage.uri)
    ids = [await tracker.start_experiment(f"e{i}") for i in range(3)]
    ends = [asyncio.create_task(tracker.end_experiment(id_)) for id_ in ids]
    await asyncio.sleep(0)  # the ends are queued, not yet committed

    if how == "cancel-scope":  # anyio's (a task group, fail_after): level-triggered
        with anyio.CancelScope() as scope:
            scope.cancel()
            await tracker.aclose()
    else:  # a plain asyncio cancel arriving while the tracker drains its queue
        closing = asyncio.create_task(tracker.aclose())
        await asyncio.sleep(0)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    await asyncio.gather(*ends)  # every queued write was committed before close returned

    if any_storage.path is not None:
        # The last connection to a WAL database checkpoints and removes the -wal file.
        assert not await anyio.Path(f"{any_storage.path}-wal").exists()
    else:
        assert await _connections(any_storage) <= before
    async with AsyncExperimentTracker(any_storage.uri) as reader:
        found = await reader.list_experiments()
    assert sorted(e.id for e in found) == sorted(ids)
    assert {e.status for e in found} == {ExperimentStatus.COMPLETED}


async def test_tags_come_back_exactly_as_given(any_storage_uri: str) -> None:
    # jsonb would return the float 7.144929814816938e+16 as the int 71449298148169380.
    tags = {"big": 7.144929814816938e16, "round": 1e16, "int": 2**60, "order": {"b": 1, "a": 2}}
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment(tags=tags, pipeline_config={"lr": 1e-22})
        stored = await tracker.get_experiment(experiment_id)
    assert stored.tags == tags
    assert [type(stored.tags[k]) for k in tags] == [float, float, int, dict]
    assert list(stored.tags["order"]) == ["b", "a"]
    assert stored.pipeline_config == {"lr": 1e-22}
