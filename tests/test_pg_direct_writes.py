"""Metric points and request records on PostgreSQL's direct path (one statement awaited
on the writer's asyncpg connection, ``_backends.CoreBackend._write_direct``), against
the real server, and the same writes through the fallback (``core``:
``_backends.DRIVER_EXECUTOR`` False, as any other driver runs).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from helpers.postgres import admin_fetch as _admin

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentStateError,
    InvalidInputError,
    _backends,
)
from healthchain.tracking._codecs import Codec
from healthchain.tracking._metric_ops import MetricsOp, ParamsOp
from healthchain.tracking._operations import Op, RequestsOp, StartOp
from healthchain.tracking._records import ExperimentStatus, RequestRecord
from healthchain.tracking._update_ops import EndOp
from healthchain.tracking._validation import utcnow

pytestmark = pytest.mark.anyio

MISSING = "0190a4c2-0000-7000-8000-000000000099"


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], bool]]:
    """Each batch the direct path was asked to write (its op classes) and whether it did:
    a spy around the real method."""
    seen: list[tuple[list[str], bool]] = []
    real = _backends.CoreBackend._write_direct

    async def spied(self: _backends.CoreBackend, ops: Sequence[Op]) -> bool:
        wrote = await real(self, ops)
        seen.append(([type(op).__name__ for op in ops], wrote))
        return wrote

    monkeypatch.setattr(_backends.CoreBackend, "_write_direct", spied)
    return seen


def _same(a: float | None, b: float) -> bool:
    """Equal as stored floats: NaN (stored as NULL) is NaN, -0.0 is not 0.0."""
    a = math.nan if a is None else a
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def _points(experiment_id: str, step: int, at: datetime, **values: float) -> MetricsOp:
    pairs = list(values.items())
    return MetricsOp.of(experiment_id, pairs, [step] * len(pairs), at, explicit=True)


def _requests(experiment_id: str, *indexes: int) -> RequestsOp:
    records = [RequestRecord(i, utcnow(), 1.5 * i, 200, None, {"f1": 0.25 * i}) for i in indexes]
    return RequestsOp.of(experiment_id, records, Codec())


async def test_points_with_known_steps_go_direct_one_call_at_a_time(
    postgres_uri: str, direct: list[tuple[list[str], bool]]
) -> None:
    """The first point of a key of an experiment another tracker started needs its
    stored highest step (the fallback reads it); every later one has the step the
    tracker counted and is one direct statement."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment("seq")
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        direct.clear()
        for i in range(5):
            await tracker.log_metric(experiment_id, "loss", i / 2)
        for i in range(3):
            await tracker.log_metrics(experiment_id, {"a": i, "b": -i})
        await tracker.log_metric(experiment_id, "loss", 9.0, step=2)  # the caller's step
        # loss: the first looked up, then its counter; a, b: the same; the step given
        assert [wrote for _, wrote in direct] == [False, *[True] * 4, False, True, True, True]
        history = await tracker.get_metric_history(experiment_id, "loss")
        assert [(p.step, p.value) for p in history] == [
            (0, 0.0), (1, 0.5), (2, 1.0), (2, 9.0), (3, 1.5), (4, 2.0)
        ]  # fmt: skip
        got = await tracker.get_experiment(experiment_id)
        assert got.metrics == {"loss": 2.0, "a": 2.0, "b": -2.0}  # step 4 is still the latest


async def test_lifecycles_with_metrics_from_64_tasks_all_go_direct(
    postgres_uri: str, direct: list[tuple[list[str], bool]]
) -> None:
    """An experiment this tracker started has no points: its first step is 0 with
    nothing read, so batches of starts, first points and ends are each one statement."""

    async def one(tracker: AsyncExperimentTracker, i: int) -> str:
        experiment_id = await tracker.start_experiment(f"r{i}")
        await tracker.log_metric(experiment_id, "acc", i)
        await tracker.log_metrics(experiment_id, {"acc": i + 0.5, "loss": -i})
        await tracker.end_experiment(experiment_id)
        return experiment_id

    async with AsyncExperimentTracker(postgres_uri) as tracker:
        direct.clear()
        ids = [await one(tracker, -1)]
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(tracker, i)) for i in range(64)]
        ids += [t.result() for t in tasks]
        assert direct and all(wrote for _, wrote in direct)
        assert len(direct) < 4 * 65  # grouped
        for i, experiment_id in enumerate(ids, -1):
            acc = await tracker.get_metric_history(experiment_id, "acc")
            assert [(p.step, p.value) for p in acc] == [(0, i), (1, i + 0.5)]
            got = await tracker.get_experiment(experiment_id)
            assert got.metrics == {"acc": i + 0.5, "loss": -i}
            assert got.status is ExperimentStatus.COMPLETED


async def test_a_batch_of_lifecycles_metrics_and_requests_is_one_statement(
    postgres_uri: str, direct: list[tuple[list[str], bool]]
) -> None:
    """Starts, points with their steps, request records and ends, in one statement: every
    row they write has the same statement start time."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = [await tracker.start_experiment(f"e{i}") for i in range(2)]
        backend = await tracker._reader()
        await _admin(
            postgres_uri,
            "DROP TABLE IF EXISTS hc_seen",
            "CREATE TABLE hc_seen (tab text, at timestamptz)",
            "CREATE OR REPLACE FUNCTION hc_seen() RETURNS trigger AS $$ BEGIN "
            "INSERT INTO hc_seen VALUES (TG_TABLE_NAME, statement_timestamp()); RETURN NEW; "
            "END $$ LANGUAGE plpgsql",
            *(
                f"CREATE TRIGGER hc_seen AFTER INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION hc_seen()"
                for table in ("experiments", "metric_points", "latest_metrics", "requests")
            ),
        )
        new = "0190a4c2-0000-7000-8000-000000000001"
        now = utcnow()
        start = StartOp.of(new, "n", "p", now, {}, {}, None, [], 10.0)
        ops: list[Op] = [
            start,
            _points(earlier[0], 0, now, acc=0.5),
            _points(earlier[1], 3, now, acc=0.7, loss=0.1),
            _points(new, 0, now, acc=0.9),
            _requests(earlier[0], 0, 1),
            EndOp.of(earlier[0], ExperimentStatus.COMPLETED, now, None),
        ]
        try:
            assert not any(isinstance(o, Exception) for o in await backend.write(ops))
            (statements, tables) = await _admin(
                postgres_uri,
                "SELECT count(DISTINCT at) FROM hc_seen",
                "SELECT DISTINCT tab FROM hc_seen ORDER BY tab",
            )
        finally:
            await _admin(postgres_uri, "DROP TABLE hc_seen CASCADE")
        assert statements[0][0] == 1
        assert [r["tab"] for r in tables] == [
            "experiments", "latest_metrics", "metric_points", "requests"
        ]  # fmt: skip
        assert direct[-1][1] is True
        assert (await tracker.get_experiment(earlier[1])).metrics == {"acc": 0.7, "loss": 0.1}
        assert (await tracker.get_experiment(new)).metrics == {"acc": 0.9}
        assert len(await tracker.list_requests(earlier[0])) == 2
        assert (await tracker.get_experiment(earlier[0])).status is ExperimentStatus.COMPLETED


async def test_a_failing_batch_fails_only_its_bad_ops(pg_uri: str) -> None:
    """Points and request records of an unknown experiment, and a request index logged
    twice, among good writes: the one statement fails with nothing written, the batch
    is replayed op by op, and only the bad ops fail."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        kept = await tracker.start_experiment("kept")
        await tracker.log_requests(kept, [RequestRecord(0, utcnow(), 1.0, 200)])
        backend = await tracker._reader()
        now = utcnow()
        ops: list[Op] = [
            _points(kept, 0, now, a=1.0),
            _points(MISSING, 0, now, a=2.0),
            _requests(kept, 1),
            _requests(MISSING, 0),
            _requests(kept, 0),  # already logged
            _points(kept, 1, now, a=3.0),
        ]
        outcomes = await backend.write(ops)
        assert isinstance(outcomes[1], ExperimentNotFoundError) and MISSING in str(outcomes[1])
        assert isinstance(outcomes[3], ExperimentNotFoundError) and MISSING in str(outcomes[3])
        assert isinstance(outcomes[4], InvalidInputError) and "[0]" in str(outcomes[4])
        assert not any(isinstance(outcomes[i], Exception) for i in (0, 2, 5))
        history = await tracker.get_metric_history(kept, "a")
        assert [(p.step, p.value) for p in history] == [(0, 1.0), (1, 3.0)]
        assert [r.index for r in await tracker.list_requests(kept)] == [0, 1]
        assert (await tracker.get_experiment(kept)).metrics == {"a": 3.0}


async def test_the_latest_value_is_the_highest_step_then_the_latest_time(pg_uri: str) -> None:
    """Steps the caller chose, out of order across the ops of one batch and after a
    higher step stored: the upsert keeps the highest step, then the later timestamp."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        experiment_id = await tracker.start_experiment("latest")
        await tracker.log_metric(experiment_id, "stored", 1.0, step=9)
        backend = await tracker._reader()
        t0 = utcnow()
        t1 = t0 + timedelta(seconds=1)
        ops: list[Op] = [
            _points(experiment_id, 5, t0, a=5.0, stored=5.0),
            _points(experiment_id, 7, t1, a=7.1),
            _points(experiment_id, 3, t1, a=3.0),
            _points(experiment_id, 7, t0, a=7.0),
        ]
        assert not any(isinstance(o, Exception) for o in await backend.write(ops))
        metrics = (await tracker.get_experiment(experiment_id)).metrics
        assert metrics == {"a": 7.1, "stored": 1.0}


async def test_special_values_one_call_at_a_time_come_back_exactly(pg_uri: str) -> None:
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, 2.0**53 + 2]
    async with AsyncExperimentTracker(pg_uri) as tracker:
        experiment_id = await tracker.start_experiment("values")
        for value in values:
            await tracker.log_metric(experiment_id, "v", value)
        for i, value in enumerate(values):  # each the latest of its key, at step 1
            await tracker.log_metric(experiment_id, f"k{i}", 0.0)
            await tracker.log_metric(experiment_id, f"k{i}", value)
        history = await tracker.get_metric_history(experiment_id, "v")
        assert [p.step for p in history] == list(range(len(values)))
        assert all(_same(p.value, v) for p, v in zip(history, values, strict=True))
    rows = await _admin(pg_uri, "SELECT key, step, value FROM latest_metrics ORDER BY key")
    stored = {r["key"]: (r["step"], r["value"]) for r in rows[0]}
    assert stored.pop("v")[0] == len(values) - 1
    for i, value in enumerate(values):
        step, got = stored[f"k{i}"]
        assert step == 1 and _same(got, value), (i, got)


async def test_params_new_or_the_same_again_go_direct(
    postgres_uri: str, direct: list[tuple[list[str], bool]]
) -> None:
    """New keys, and keys logged again with their value, need nothing read first: one
    direct statement each; a changed value fails it, and the fallback says which."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment("params")
        direct.clear()
        await tracker.log_params(experiment_id, {"lr": 0.1, "layers": [64, 32]})
        await tracker.log_params(experiment_id, {"lr": 0.1, "seed": 7})
        await tracker.log_params(experiment_id, {"layers": [64, 32]})
        with pytest.raises(ExperimentStateError, match=r"'lr'.*0\.1.*0\.2"):
            await tracker.log_params(experiment_id, {"seed": 7, "lr": 0.2, "new": 1})
        assert [wrote for _, wrote in direct] == [True, True, True, False]
        got = await tracker.get_experiment(experiment_id)
        assert got.params == {"lr": 0.1, "layers": [64, 32], "seed": 7}  # "new": not written


async def test_params_in_one_batch_are_judged_in_queue_order(pg_uri: str) -> None:
    """Two ops naming one key (the second with another value), a param of an unknown
    experiment, and good ones: the first value stays, only the bad ops fail."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        kept = await tracker.start_experiment("kept")
        backend = await tracker._reader()
        ops: list[Op] = [
            ParamsOp(kept, {"a": "1", "b": '"x"'}),
            ParamsOp(kept, {"a": "2"}),
            ParamsOp(MISSING, {"a": "1"}),
            ParamsOp(kept, {"a": "1", "c": "null"}),
        ]
        outcomes = await backend.write(ops)
        assert outcomes[0] is None and outcomes[3] is None
        assert isinstance(outcomes[1], ExperimentStateError) and "'a'" in str(outcomes[1])
        assert isinstance(outcomes[2], ExperimentNotFoundError)
        assert (await tracker.get_experiment(kept)).params == {"a": 1, "b": "x", "c": None}
