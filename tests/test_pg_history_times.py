"""Metric history times on PostgreSQL read back exact to the microsecond, aware UTC,
across Python's whole range, whatever the session's DateStyle (``_metric_reads`` reads
them as ISO text). Each test runs on both executors (``pg_uri``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from helpers.postgres import admin_fetch

from healthchain.tracking import AsyncExperimentTracker

pytestmark = pytest.mark.anyio

_BASES = [
    datetime(1, 1, 1),
    datetime(1, 1, 1, 0, 0, 1),
    datetime(999, 12, 31, 23, 59, 59),
    datetime(1899, 12, 31, 23, 59, 59),
    datetime(1969, 12, 31, 23, 59, 59),
    datetime(1970, 1, 1),
    datetime(1999, 12, 31, 23, 59, 59),
    datetime(2000, 1, 1),
    datetime(2000, 2, 29, 12, 30, 30),
    datetime(2038, 1, 19, 3, 14, 7),
    datetime(9999, 12, 31, 23, 59, 58),
    datetime(9999, 12, 31, 23, 59, 59),
]
# Every count of trailing zeros PostgreSQL trims from a fraction, and none at all.
_MICROSECONDS = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 500000, 999999]


def _instants() -> list[datetime]:
    """Boundary instants (years 1 and 9999, around 1970 and 2000, a leap day, with each
    fraction) and a seeded sample of microseconds across the whole range, all in UTC."""
    edges = [base.replace(microsecond=us) for base in _BASES for us in _MICROSECONDS]
    rng = random.Random(15)
    span = (datetime.max - datetime.min) // timedelta(microseconds=1)
    sample = [datetime.min + timedelta(microseconds=rng.randrange(span + 1)) for _ in range(400)]
    return [t.replace(tzinfo=UTC) for t in edges + sample]


async def _history_round_trip(uri: str) -> None:
    instants = _instants()
    # A few given in other offsets: read back as the same instant in UTC.
    given: list[datetime] = [*instants]
    for i in range(len(_MICROSECONDS) * 7, len(_MICROSECONDS) * 8):
        given[i] = instants[i].astimezone(timezone(timedelta(hours=-9, minutes=-30)))
    async with AsyncExperimentTracker(uri) as tracker:
        run = await tracker.start_experiment("times")
        await asyncio.gather(
            *(tracker.log_metric(run, "t", 1.0, step=i, timestamp=t) for i, t in enumerate(given))
        )
        history = await tracker.get_metric_history(run, "t")
    assert [p.step for p in history] == list(range(len(instants)))
    assert [p.timestamp for p in history] == instants
    # Equal instants compare equal across offsets; the fields must be UTC's own.
    assert [p.timestamp.timetuple() for p in history] == [t.timetuple() for t in instants]
    assert [p.timestamp.microsecond for p in history] == [t.microsecond for t in instants]
    assert all(type(p.timestamp) is datetime and p.timestamp.tzinfo is UTC for p in history)


async def test_times_read_back_exact_across_pythons_range(pg_uri: str) -> None:
    await _history_round_trip(pg_uri)


_DATABASE = "EXECUTE format('ALTER DATABASE %I {}', current_database())"


@asynccontextmanager
async def _datestyle(uri: str, style: str) -> AsyncIterator[None]:
    """Every session opened inside on the test database in DateStyle ``style``."""
    change = _DATABASE.format(f"SET datestyle = {style}")
    await admin_fetch(uri, f"DO $$ BEGIN {change}; END $$")
    try:
        [[row]] = await admin_fetch(uri, "SHOW datestyle")
        assert row[0] == style
        yield
    finally:
        await admin_fetch(uri, f"DO $$ BEGIN {_DATABASE.format('RESET datestyle')}; END $$")


@pytest.mark.parametrize("style", ["SQL, DMY", "Postgres, MDY", "German, DMY"])
async def test_times_read_back_exact_in_any_datestyle(pg_uri: str, style: str) -> None:
    """ISO text only in DateStyle ISO: in another, history reads the driver's times."""
    async with _datestyle(pg_uri, style):
        await _history_round_trip(pg_uri)
