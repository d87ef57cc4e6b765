"""Rows another writer left with values the tracker never writes: one such row never
breaks a list, a page or the command line for everyone else.

Timestamps: SQLite stores them as text, so only SQLite can hold 'garbage' or a number
where a time belongs (those tests are SQLite only); PostgreSQL's timestamptz holds only
times, but also ``infinity``, ``-infinity`` and years Python cannot hold (past 9999 or
BC), which are tested there. A status outside
the four needs SQLite's ``PRAGMA ignore_check_constraints`` (PostgreSQL enforces it).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
from datetime import UTC, datetime

import anyio
import httpx
import pytest
from helpers.dashboard import dashboard_client
from helpers.storage import Storage
from typer.testing import CliRunner

from healthchain.cli import app as cli_app
from healthchain.tracking import (
    ExperimentStatus,
    ExperimentTracker,
    MetricPoint,
    RequestRecord,
    _backends,
)
from healthchain.tracking._ids import id_time


def _pages(uri: str, *paths: str) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        async with dashboard_client(uri) as c:
            return [await c.get(path) for path in paths]

    return anyio.run(fetch)


def _cli(uri: str, *args: str) -> str:
    result = CliRunner().invoke(cli_app, ["experiments", *args, "--storage-uri", uri])
    assert result.exit_code == 0, result.output
    return result.output


def _everyone_still_sees_everything(uri: str, ids: list[str]) -> None:
    with ExperimentTracker(uri) as tracker:
        assert {e.id for e in tracker.list_experiments()} == set(ids)
        for experiment_id in ids:
            assert tracker.get_experiment(experiment_id).id == experiment_id
    listed = _cli(uri, "list", "--format", "json")
    assert all(experiment_id in listed for experiment_id in ids)
    _cli(uri, "list")
    for experiment_id in ids:
        _cli(uri, "show", experiment_id)
    responses = _pages(uri, "/", *(f"/experiments/{i}" for i in ids))
    assert [r.status_code for r in responses] == [200] * (len(ids) + 1)
    assert all(experiment_id[:8] in responses[0].text for experiment_id in ids)


def test_unreadable_times_read_as_none_or_the_time_in_the_id(
    sqlite_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite only: see the module docstring."""
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        ordinary = tracker.start_experiment("ordinary")
        odd = tracker.start_experiment("odd")
        numeric = tracker.start_experiment("numeric")
        not_v7 = tracker.start_experiment("not v7")
        tracker.end_experiment(ordinary)
    foreign_id = "00000000-0000-4000-8000-000000000000"
    sqlite_storage.query("UPDATE experiments SET id = ? WHERE id = ?", foreign_id, not_v7)
    sqlite_storage.query(
        "UPDATE experiments SET start_time = 'garbage', end_time = 'garbage', "
        "heartbeat_at = ? WHERE id IN (?, ?)",
        "x" * 200,
        odd,
        foreign_id,
    )
    sqlite_storage.query(
        "UPDATE experiments SET start_time = 12345, end_time = 2.5 WHERE id = ?", numeric
    )
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(sqlite_storage.uri) as tracker,
    ):
        listed = {e.id: e for e in tracker.list_experiments()}
        assert listed[ordinary].end_time is not None  # the others' values are untouched
        assert listed[odd].start_time == id_time(odd)
        assert listed[odd].end_time is None and listed[odd].heartbeat_at is None
        assert listed[numeric].start_time == id_time(numeric)
        assert listed[foreign_id].start_time == datetime(1970, 1, 1, tzinfo=UTC)
        assert tracker.get_experiment(odd) == listed[odd]
    assert f"experiment {odd}: its start_time 'garbage' is not a time" in caplog.text
    assert f"experiment {odd}: its end_time 'garbage' is not a time" in caplog.text
    assert f"experiment {odd}: its heartbeat_at 'xxxx" in caplog.text
    assert "x" * 50 not in caplog.text  # the bad value is shortened
    _everyone_still_sees_everything(sqlite_storage.uri, [ordinary, odd, numeric, foreign_id])


def test_infinite_times_on_postgresql_still_list(postgres_storage: Storage) -> None:
    """PostgreSQL only: see the module docstring."""
    with ExperimentTracker(postgres_storage.uri) as tracker:
        ordinary = tracker.start_experiment("ordinary")
        odd = tracker.start_experiment("odd")
        tracker.end_experiment(odd)
    postgres_storage.query(
        "UPDATE experiments SET start_time = '-infinity', end_time = 'infinity', "
        "heartbeat_at = 'infinity' WHERE id = ?",
        odd,
    )
    _everyone_still_sees_everything(postgres_storage.uri, [ordinary, odd])


def test_times_past_pythons_years_on_postgresql_still_list(
    postgres_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL only (see the module docstring): asyncpg fails a whole read on such a
    value, so the read is retried with times as text."""
    now = datetime.now(UTC)
    with ExperimentTracker(postgres_storage.uri) as tracker:
        ordinary = tracker.start_experiment("ordinary")
        odd = tracker.start_experiment("odd")
        tracker.log_requests(odd, [RequestRecord(i, now, 10.0, 200) for i in range(2)])
        tracker.end_experiment(odd)
    postgres_storage.query(
        "UPDATE experiments SET start_time = '20000-01-01', end_time = '4000-01-01 BC' "
        "WHERE id = ?",
        odd,
    )
    postgres_storage.query("UPDATE requests SET start_time = '20000-01-01' WHERE seq = 0")
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(postgres_storage.uri) as tracker,
    ):
        found = tracker.get_experiment(odd)
        assert (found.start_time, found.end_time) == (id_time(odd), None)
        assert tracker.get_experiment(ordinary).start_time.year == now.year
        assert [r.index for r in tracker.list_requests(odd)] == [1]
    assert f"experiment {odd}: its start_time '20000-01-01 00:00:00+00'" in caplog.text
    _everyone_still_sees_everything(postgres_storage.uri, [ordinary, odd])


def test_a_status_outside_the_four_reads_as_failed(
    sqlite_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite only: see the module docstring."""
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        ordinary = tracker.start_experiment("ordinary")
        odd = tracker.start_experiment("odd")
        tracker.end_experiment(ordinary)
    assert sqlite_storage.path is not None
    with contextlib.closing(sqlite3.connect(sqlite_storage.path)) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE experiments SET status = 'PAUSED' WHERE id = ?", (odd,))
        conn.commit()
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(sqlite_storage.uri) as tracker,
    ):
        listed = {e.id: e.status for e in tracker.list_experiments()}
        assert listed == {ordinary: ExperimentStatus.COMPLETED, odd: ExperimentStatus.FAILED}
    assert f"experiment {odd}: its status 'PAUSED' is not one of" in caplog.text
    _everyone_still_sees_everything(sqlite_storage.uri, [ordinary, odd])


def test_unreadable_request_rows_are_skipped_or_read_as_no_response(
    sqlite_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite only: see the module docstring."""
    now = datetime.now(UTC)
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        run = tracker.start_experiment("run")
        tracker.log_requests(run, [RequestRecord(i, now, 10.0 + i, 200) for i in range(4)])
    sqlite_storage.query("UPDATE requests SET start_time = 'garbage' WHERE seq = 0")
    sqlite_storage.query("UPDATE requests SET latency_ms = 'slow' WHERE seq = 1")
    sqlite_storage.query("UPDATE requests SET status_code = 'teapot' WHERE seq = 2")
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(sqlite_storage.uri) as tracker,
    ):
        records = tracker.list_requests(run)
        assert [(r.index, r.status_code, r.failed) for r in records] == [
            (2, None, True),
            (3, 200, False),
        ]
        stats = tracker.request_stats(run)
        assert (stats.count, stats.failures) == (4, 1)  # SQL counts 'teapot' failed too
        assert (stats.p50_ms, stats.p95_ms) == (12.0, 13.0)
    assert f"experiment {run}: request 0 is skipped" in caplog.text
    assert f"experiment {run}: request 2: its status_code 'teapot'" in caplog.text
    _everyone_still_sees_everything(sqlite_storage.uri, [run])


@pytest.mark.parametrize("executor", ["driver", "core"])
def test_metric_points_at_times_past_pythons_years_on_postgresql_still_read(
    postgres_storage: Storage, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    """asyncpg hands out infinity as a naive datetime and fails a whole read on a year it
    cannot hold: history reads such points at the ends of Python's range, aware UTC."""
    if executor == "core":
        monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    with ExperimentTracker(postgres_storage.uri) as tracker:
        experiment_id = tracker.start_experiment("odd points")
        for step, value in enumerate([1.0, math.nan, 3.0, 4.0, 5.0]):
            tracker.log_metric(experiment_id, "loss", value, step=step)
    for step, stored in enumerate(["infinity", "-infinity", "20000-01-01", "4000-01-01 BC"]):
        postgres_storage.query(
            f"UPDATE metric_points SET timestamp = '{stored}' WHERE step = ?", step
        )
    with ExperimentTracker(postgres_storage.uri) as tracker:
        points = tracker.get_metric_history(experiment_id, "loss")
    latest, earliest = datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)
    assert [p.timestamp for p in points[:4]] == [latest, earliest, latest, earliest]
    assert all(type(p) is MetricPoint and p.timestamp.tzinfo is UTC for p in points)
    assert [p.step for p in points] == [0, 1, 2, 3, 4]
    assert points[0].value == 1.0 and math.isnan(points[1].value) and points[4].value == 5.0
