"""Metric points sent as texts the server parses (``_pg_packed``), against the real
PostgreSQL server: the very rows the fallback (``_backends.DRIVER_EXECUTOR`` False, as
any other driver runs) writes from arrays, for keys, values, steps and times that array
syntax or a float's text could get wrong.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from helpers.postgres import admin_fetch, reset_postgres
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from healthchain.tracking import AsyncExperimentTracker, _backends
from healthchain.tracking._batch import statements_of
from healthchain.tracking._executors import CompiledCache
from healthchain.tracking._metric_input import MAX_STEP
from healthchain.tracking._metric_ops import MetricsOp
from healthchain.tracking._pg_statements import batch_statement

pytestmark = pytest.mark.anyio

# What array input reads specially (quotes, backslashes, commas, braces, NULL, spaces
# at the ends), the unit separator, and text that is no ASCII.
_KEYS = [
    'k"q',
    "back\\slash",
    'a"\\"b',
    "a,b",
    "{brace}",
    " spaced ",
    "NULL",
    "None",
    "x\x1fy",
    "日本 ☃",
    '"',
    "\\",
]
_VALUES = [
    math.inf,
    -math.inf,
    math.nan,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    0.1 + 0.2,
    2**53 + 1,
    -1.5e-7,
    123456789.123456789,
    0,
    1,
]
_EAST = timezone(timedelta(hours=5, minutes=30))
_WEST = timezone(timedelta(hours=-8))
_WHEN = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
_FIRST = datetime(2026, 2, 1, tzinfo=_WEST)

_ROWS = (
    "SELECT e.name, m.key, m.step, m.timestamp, m.value::text FROM metric_points m "
    "JOIN experiments e ON e.id = m.experiment_id ORDER BY 1, 2, 3, 4, 5",
    "SELECT e.name, m.key, m.step, m.timestamp, m.value::text FROM latest_metrics m "
    "JOIN experiments e ON e.id = m.experiment_id ORDER BY 1, 2",
)


async def _write_all(url: str) -> list[list[tuple[Any, ...]]]:
    """Awkward points: a call of many keys, many calls at once over three experiments
    (times of one instant in other offsets among them), explicit steps up to the
    largest; the rows they stored."""
    await reset_postgres(url)
    async with AsyncExperimentTracker(url) as tracker:
        ids = [await tracker.start_experiment(f"run-{n}") for n in range(3)]
        await tracker.log_metrics(ids[0], dict(zip(_KEYS, _VALUES, strict=True)), timestamp=_FIRST)
        await asyncio.gather(
            *(
                tracker.log_metrics(
                    ids[n % 3],
                    {key: _VALUES[(n + i) % len(_VALUES)] for i, key in enumerate(_KEYS[:4])},
                    step=[0, 7, MAX_STEP][n % 3],
                    timestamp=(_WHEN + timedelta(microseconds=n % 2)).astimezone(
                        (UTC, _EAST, _WEST)[n % 3]
                    ),
                )
                for n in range(30)
            )
        )
    return [[tuple(row) for row in rows] for rows in await admin_fetch(url, *_ROWS)]


async def test_points_sent_as_texts_are_those_the_fallback_writes(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row for row; each value's text as PostgreSQL prints it (-0 included)."""
    direct = await _write_all(postgres_uri)
    monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    fallback = await _write_all(postgres_uri)
    assert direct == fallback
    points, latest = direct
    given = {_WHEN, _WHEN + timedelta(microseconds=1)}
    first = {row[1]: row[2:] for row in points if row[3] not in given}
    now = (
        points[0][3]
        if points[0][3] not in given
        else next(r[3] for r in points if r[3] not in given)
    )
    assert first == {
        key: (0, now, text)
        for key, text in zip(
            _KEYS,
            [
                "Infinity",
                "-Infinity",
                None,
                "-0",
                "5e-324",
                "1.7976931348623157e+308",
                "0.30000000000000004",
                "9.007199254740992e+15",
                "-1.5e-07",
                "123456789.12345679",
                "0",
                "1",
            ],
            strict=True,
        )
    }
    later = [row for row in points if row[3] in given]
    assert len(later) == 30 * 4
    assert {row[2] for row in later} == {0, 7, MAX_STEP}
    assert {row[3] for row in later} == given
    assert len(latest) == len(_KEYS) + 2 * 4


def _points(n: int, keys: list[str], when: datetime) -> MetricsOp:
    experiment_id = f"0190a4c2-0000-7000-8000-{n:012d}"
    values = [(key, float(i)) for i, key in enumerate(keys)]
    return MetricsOp.of(experiment_id, values, list(range(len(keys))), when, explicit=False)


def test_a_batch_of_points_binds_texts_and_its_distinct_times() -> None:
    """Ids, keys, steps, each point's time (an index) and values as five texts; the
    times themselves once each: no array of one element per point for asyncpg to check
    and encode element by element."""
    later = _WHEN + timedelta(seconds=1)
    batch = [_points(0, _KEYS, _WHEN), _points(1, ["a", "b"], _WHEN), _points(2, ["c"], later)]
    planned = batch_statement(CompiledCache(), {}, asyncpg_dialect(), statements_of(batch))
    assert planned is not None
    points = planned[1][:6]
    assert [type(value) for value in points] == [str, str, str, list, str, str]
    assert points[3] == [_WHEN, later]
    assert points[4] == "{" + ", ".join(["1"] * (len(_KEYS) + 2) + ["2"]) + "}"
