"""Metric history times on PostgreSQL read back exact to the microsecond, aware UTC,
across Python's whole range, whatever the session's DateStyle (``_metric_reads`` reads
them as ISO text). Each test runs on both executors (``pg_uri``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from helpers.postgres import count_queries
from helpers.times import MICROSECONDS, OTHER_DATESTYLES, datestyle
from helpers.times import instants as all_instants

from healthchain.tracking import AsyncExperimentTracker

pytestmark = pytest.mark.anyio


async def _history_round_trip(uri: str) -> None:
    instants = all_instants()
    # A few given in other offsets: read back as the same instant in UTC.
    given: list[datetime] = [*instants]
    for i in range(len(MICROSECONDS) * 7, len(MICROSECONDS) * 8):
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


@pytest.mark.parametrize("style", OTHER_DATESTYLES)
async def test_times_read_back_exact_in_any_datestyle(pg_uri: str, style: str) -> None:
    """ISO text only in DateStyle ISO: in another, history reads the driver's times."""
    async with datestyle(pg_uri, style):
        await _history_round_trip(pg_uri)


@pytest.mark.parametrize("style", ["ISO, MDY", *OTHER_DATESTYLES])
async def test_history_is_one_query_in_any_datestyle(
    pg_uri: str, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form of the times is chosen from the DateStyle the driver reports, not by a
    failed parse of ISO text followed by a second read."""
    async with datestyle(pg_uri, style), AsyncExperimentTracker(pg_uri) as tracker:
        run = await tracker.start_experiment("times")
        await tracker.log_metrics(run, {"t": 1.0}, step=0)
        queries = count_queries(monkeypatch)
        [point] = await tracker.get_metric_history(run, "t")
    assert len(queries) == 1
    assert point.timestamp.tzinfo is UTC
