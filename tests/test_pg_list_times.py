"""Experiment times in PostgreSQL lists read back exact to the microsecond, aware UTC,
across Python's whole range, whatever the session's DateStyle (``_queries`` reads them
as ISO text in DateStyle ISO, the driver's times in any other); rows another writer left
read as they always have. Each test runs on both executors (``pg_uri``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from helpers.postgres import admin_fetch
from helpers.times import OTHER_DATESTYLES, datestyle, instants

from healthchain.tracking import AsyncExperimentTracker
from healthchain.tracking._ids import id_time

pytestmark = pytest.mark.anyio

_ALL_STYLES = ["ISO, MDY", *OTHER_DATESTYLES]


def _literal(time: datetime | str | None) -> str:
    if time is None:
        return "NULL"
    return f"'{time.isoformat() if isinstance(time, datetime) else time}'"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the tracker logged: the capture also holds asyncio's own warnings (debug
    mode names a step that took over 0.1 s, as on a loaded CI machine)."""
    return [r.getMessage() for r in caplog.records if r.name.startswith("healthchain")]


async def _stored(uri: str, count: int) -> list[str]:
    """``count`` ended experiments (no reaper touches their times), newest first."""
    async with AsyncExperimentTracker(uri) as tracker:
        ids = [await tracker.start_experiment(f"run {i}") for i in range(count)]
        await asyncio.gather(*(tracker.end_experiment(i) for i in ids))
    return ids[::-1]


async def _set_times(uri: str, times: dict[str, tuple[object, object, object]]) -> None:
    """Store each experiment's (start_time, end_time, heartbeat_at) as given."""
    values = ", ".join(
        f"('{id_}', {', '.join(_literal(t) + '::timestamptz' for t in row)})"  # type: ignore[arg-type]
        for id_, row in times.items()
    )
    await admin_fetch(
        uri,
        "UPDATE experiments e SET start_time = v.s, end_time = v.e, heartbeat_at = v.b "
        f"FROM (VALUES {values}) v(id, s, e, b) WHERE e.id = v.id",
    )


@pytest.mark.parametrize("style", _ALL_STYLES)
async def test_listed_times_read_back_exact_in_any_datestyle(
    pg_uri: str, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    every = instants()
    ids = await _stored(pg_uri, len(every) // 2)
    # Each instant as a start; every other one as an end, every third as a heartbeat.
    expected = {
        id_: (every[n], every[-n - 1] if n % 2 else None, every[n + 1] if n % 3 else None)
        for n, id_ in enumerate(ids)
    }
    await _set_times(pg_uri, expected)  # type: ignore[arg-type]
    async with datestyle(pg_uri, style):
        with caplog.at_level(logging.WARNING, "healthchain.tracking"):
            async with AsyncExperimentTracker(pg_uri) as tracker:
                listed = await tracker.list_experiments()
                one = await tracker.get_experiment(ids[1])
    assert _warnings(caplog) == []
    assert [e.id for e in listed] == ids
    got = {e.id: (e.start_time, e.end_time, e.heartbeat_at) for e in listed}
    assert got == expected
    # Equal instants compare equal across offsets; the fields must be UTC's own.
    times = [t for row in got.values() for t in row if t is not None]
    assert [t.timetuple() for t in times] == [
        t.timetuple() for row in expected.values() for t in row if t is not None
    ]
    assert all(type(t) is datetime and t.tzinfo is UTC for t in times)
    assert one is not None and (one.start_time, one.end_time, one.heartbeat_at) == expected[ids[1]]


@pytest.mark.parametrize("style", _ALL_STYLES)
async def test_iso_text_is_read_only_in_datestyle_iso(pg_uri: str, style: str) -> None:
    """Times are read as ISO text only where the session prints them so: in another
    DateStyle a list reads the driver's times at once, not after a failed parse."""
    async with datestyle(pg_uri, style), AsyncExperimentTracker(pg_uri) as tracker:
        backend = await tracker._reader()
        assert await backend.read(lambda ex: ex.iso_times) is style.startswith("ISO")


@pytest.mark.parametrize("style", ["ISO, MDY", "SQL, DMY"])
async def test_infinite_times_list_as_the_ends_of_pythons_range(
    pg_uri: str, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As the driver reads them, silently, with the rows around them untouched."""
    ordinary, infinite = await _stored(pg_uri, 2)
    await _set_times(pg_uri, {infinite: ("-infinity", "infinity", "infinity")})
    latest, earliest = datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)
    async with datestyle(pg_uri, style):
        with caplog.at_level(logging.WARNING, "healthchain.tracking"):
            async with AsyncExperimentTracker(pg_uri) as tracker:
                listed = {e.id: e for e in await tracker.list_experiments()}
    assert _warnings(caplog) == []
    got = {i: (e.start_time, e.end_time, e.heartbeat_at) for i, e in listed.items()}
    assert got[infinite] == (earliest, latest, latest)
    assert got[ordinary][0] < got[ordinary][1]  # type: ignore[operator]


@pytest.mark.parametrize("style", ["ISO, MDY", "SQL, DMY", "German, DMY"])
async def test_years_python_cannot_hold_list_as_before(
    pg_uri: str, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Read as text: the start as the time in the id, another time as None, with one
    warning per value (quoting it as the server prints it) and none for the rows around
    them, whatever the DateStyle; an infinity beside them still reads as the end of
    Python's range."""
    ordinary, past, before = await _stored(pg_uri, 3)
    await _set_times(
        pg_uri,
        {
            past: ("20000-01-01 00:00:00+00", None, "20000-01-01 00:00:00+00"),
            before: ("2024-01-01 00:00:00+00", "4000-01-01 00:00:00+00 BC", "infinity"),
        },
    )
    async with datestyle(pg_uri, style):
        [[printed]] = await admin_fetch(
            pg_uri,
            "SELECT ARRAY['20000-01-01 00:00:00+00'::timestamptz::text, "
            "'4000-01-01 00:00:00+00 BC'::timestamptz::text]",
        )
        with caplog.at_level(logging.WARNING, "healthchain.tracking"):
            async with AsyncExperimentTracker(pg_uri) as tracker:
                listed = {e.id: e for e in await tracker.list_experiments()}
    far, bc = printed[0]
    got = {i: (e.start_time, e.end_time, e.heartbeat_at) for i, e in listed.items()}
    assert got[past] == (id_time(past), None, None)
    assert got[before] == (datetime(2024, 1, 1, tzinfo=UTC), None, datetime.max.replace(tzinfo=UTC))
    assert got[ordinary][0] < got[ordinary][1]  # type: ignore[operator]
    assert sorted(_warnings(caplog)) == sorted(
        [
            f"experiment {past}: its start_time '{far}' is not a time; shown as the time in its id",
            f"experiment {past}: its heartbeat_at '{far}' is not a time; shown as empty",
            f"experiment {before}: its end_time '{bc}' is not a time; shown as empty",
        ]
    )
