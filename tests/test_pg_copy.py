"""Metric points by COPY on PostgreSQL (``_pg_copy``), against the real server.

Each test runs three ways: ``copy`` (every batch of points goes by COPY), ``insert``
(none does: the INSERT from arrays, as below the threshold) and ``core`` (the fallback
through ``Connection.execute``, as any other driver runs); the stored values must be
the same every way, and a failing batch must fail only its bad operation.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    _backends,
    _pg_copy,
)
from healthchain.tracking._metric_ops import MetricsOp
from healthchain.tracking._operations import Op
from healthchain.tracking._schema import INSERT_METRIC_POINT, UPSERT_LATEST_METRIC

pytestmark = pytest.mark.anyio

MAX_STEP = 2**63 - 1
VALUES = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "max": 1.7976931348623157e308,
    "tiny": 5e-324,  # the smallest subnormal
    "min_normal": 2.2250738585072014e-308,
    "neg_zero": -0.0,
    "pi": math.pi,
    "big_int": 2.0**53 + 2,
}


@dataclass
class Mode:
    """How points are written, and the rows of each COPY run (a spy on the real one)."""

    name: str
    copies: list[int] = field(default_factory=list)

    def expected(self, *rows: int) -> list[int]:
        return list(rows) if self.name == "copy" else []


@pytest.fixture(params=["copy", "insert", "core"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Mode:
    chosen = Mode(request.param)
    real = _pg_copy.Copier.copy

    def counted(self: _pg_copy.Copier, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
        chosen.copies.append(len(rows))
        real(self, stmt, rows)

    monkeypatch.setattr(_pg_copy.Copier, "copy", counted)
    monkeypatch.setattr(_pg_copy, "COPY_MIN_ROWS", 1 if chosen.name == "copy" else 10**9)
    if chosen.name == "core":
        monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    return chosen


async def _fetch(uri: str, sql: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(uri.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _same(a: float, b: float) -> bool:
    """Equal as stored floats: NaN is NaN, -0.0 is not 0.0."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


async def test_values_times_and_steps_come_back_exactly(postgres_uri: str, mode: Mode) -> None:
    when = [
        datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
        datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
    ]
    steps = [MAX_STEP, MAX_STEP - 1, 0]
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment("copy")
        for step, at in zip(steps, when, strict=True):
            await tracker.log_metrics(experiment_id, VALUES, step=step, timestamp=at)
        for key, value in VALUES.items():
            history = await tracker.get_metric_history(experiment_id, key)
            assert [p.step for p in history] == sorted(steps)
            assert all(_same(p.value, value) for p in history), (key, history)
            by_step = {p.step: p.timestamp for p in history}
            assert [by_step[s] for s in steps] == when  # the same instants
            assert all(p.timestamp.tzinfo is UTC for p in history)
    # Read where it is stored: get_experiment's metrics add 0.0, which makes -0.0 0.0.
    latest = dict(await _fetch(postgres_uri, "SELECT key, value FROM latest_metrics"))
    assert latest.keys() == VALUES.keys()
    assert all(_same(math.nan if latest[k] is None else latest[k], v) for k, v in VALUES.items())
    assert mode.copies == mode.expected(*[len(VALUES)] * len(steps))


async def test_one_point_per_call_comes_back_exactly(postgres_uri: str, mode: Mode) -> None:
    """A write of one row per table binds plain values, not one-element arrays."""
    at = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment("one")
        for key, value in VALUES.items():
            await tracker.log_metric(experiment_id, key, value, step=MAX_STEP, timestamp=at)
            (point,) = await tracker.get_metric_history(experiment_id, key)
            assert (point.step, point.timestamp) == (MAX_STEP, at)
            assert _same(point.value, value), (key, point)
    latest = dict(await _fetch(postgres_uri, "SELECT key, value FROM latest_metrics"))
    assert all(_same(math.nan if latest[k] is None else latest[k], v) for k, v in VALUES.items())
    assert mode.copies == mode.expected(*[1] * len(VALUES))


async def test_points_from_many_tasks_are_all_stored_in_order(
    postgres_uri: str, mode: Mode
) -> None:
    keys = [f"k{i}" for i in range(10)]
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment("many")
        await asyncio.gather(
            *(tracker.log_metrics(experiment_id, dict.fromkeys(keys, float(i))) for i in range(300))
        )
        for key in keys:
            history = await tracker.get_metric_history(experiment_id, key)
            assert [(p.step, p.value) for p in history] == [(i, float(i)) for i in range(300)]
        assert (await tracker.get_experiment(experiment_id)).metrics == dict.fromkeys(keys, 299.0)
    assert sum(mode.copies) == sum(mode.expected(3000))


async def test_a_batch_naming_a_deleted_experiment_fails_only_that_operation(
    postgres_uri: str, mode: Mode
) -> None:
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        kept, gone = await tracker.start_experiment("kept"), await tracker.start_experiment("gone")
        assert await tracker.delete_experiments([gone]) == 1
        backend = await tracker._reader()
        now = datetime.now(UTC)
        ops = [
            MetricsOp.of(experiment_id, [("a", 1.0), ("b", 2.0)], [step, step], now, explicit=True)
            for step, experiment_id in enumerate([kept, kept, gone, kept])
        ]
        outcomes = await backend.write(ops)
        assert outcomes[:2] == [(), ()] and outcomes[3] == ()
        assert isinstance(outcomes[2], ExperimentNotFoundError) and gone in str(outcomes[2])
        history = await tracker.get_metric_history(kept, "b")
        assert [(p.step, p.value) for p in history] == [(0, 2.0), (1, 2.0), (3, 2.0)]


class _PointsOfAnother(Op):
    """Writes a latest value for ``kept`` and points for an experiment that does not
    exist: the INSERT of the one succeeds, the COPY of the other breaks the foreign key."""

    single_statement = True  # what MetricsOp claims too: it runs in autocommit

    def __init__(self, kept: str, missing: str) -> None:
        super().__init__()
        self.kept, self.missing = kept, missing

    def apply(self, ex: Any) -> None:
        now = datetime.now(UTC)
        point = {"key": "k", "step": 0, "timestamp": now, "value": 1.0}
        ex.write_all(
            (
                (INSERT_METRIC_POINT, [{**point, "experiment_id": self.missing}]),
                (UPSERT_LATEST_METRIC[ex.dialect], [{**point, "experiment_id": self.kept}]),
            )
        )


async def test_a_copy_that_fails_undoes_the_statement_written_with_it(
    postgres_uri: str, mode: Mode
) -> None:
    """The COPY joins the transaction its batch's INSERT began, even for an operation
    that would run alone in autocommit: nothing of a failed write is left."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        kept = await tracker.start_experiment("kept")
        backend = await tracker._reader()
        missing = "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e"
        (outcome,) = await backend.write([_PointsOfAnother(kept, missing)])
        assert isinstance(outcome, IntegrityError)
        assert (await tracker.get_experiment(kept)).metrics == {}
        # the writer's connection is sound and in transactions again
        await tracker.log_metrics(kept, {"after": 1.0})
        assert (await tracker.get_experiment(kept)).metrics == {"after": 1.0}
    assert mode.copies == mode.expected(1, 1)


def test_copy_pays_only_from_its_measured_threshold() -> None:
    parts = [(INSERT_METRIC_POINT, [{}] * 20_000), (UPSERT_LATEST_METRIC["postgresql"], [{}])]
    assert _pg_copy.Copier.wanted(parts) == 0
    assert (
        _pg_copy.Copier.wanted([(parts[0][0], [{}] * (_pg_copy.COPY_MIN_ROWS - 1)), parts[1]])
        is None
    )
    # alone, nothing would begin the transaction the COPY must join
    assert _pg_copy.Copier.wanted(parts[:1]) is None
