"""Reaping RUNNING experiments whose process died, against rows anything may have written.

Each test runs on a SQLite file and on the PostgreSQL server (``any_storage``). Rows are
altered through the side door, the way another program (or an older version) could have
left them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers.storage import Storage

from healthchain.tracking import ExperimentStatus, ExperimentTracker

HOUR = timedelta(hours=1)
DAYS = timedelta(days=4)  # past 3 x the longest accepted interval (one day)


def _statuses(storage: Storage, ids: dict[str, str]) -> dict[str, str]:
    # Through the side door: garbled timestamps are for the reaper to survive, not to show.
    found = dict(storage.query("SELECT id, status FROM experiments"))
    return {name: found[i] for name, i in ids.items()}


def test_each_row_is_judged_on_its_own_values(any_storage: Storage) -> None:
    sqlite = any_storage.path is not None
    now = datetime.now(UTC)
    hour_ago, days_ago = now - HOUR, now - DAYS
    # What a row left by anything may hold, and whether it is stale (True) or not.
    cases: dict[str, tuple[Any, Any, bool]] = {
        "stale": (hour_ago, 10.0, True),
        "huge-recent": (hour_ago, 1e300, False),  # judged by the longest interval, one day
        "huge-old": (days_ago, 1e300, True),
        "beyond-accepted": (hour_ago, 1e15, False),
        "inf-old": (days_ago, math.inf, True),
        "negative-recent": (hour_ago, -5.0, False),  # unusable: judged by the longest
        "negative-old": (days_ago, -5.0, True),
        "zero-old": (days_ago, 0.0, True),
        "tiny": (now - timedelta(seconds=2), 1e-9, True),  # judged by the shortest, 0.05 s
        # NaN is NULL to SQLite (refused by NOT NULL); text is what it keeps instead.
        "unusable-old": (days_ago, "soon" if sqlite else math.nan, True),
        "unusable-recent": (hour_ago, "soon" if sqlite else math.nan, False),
        "no-beat": (None, 10.0, False),  # nothing to judge it by: left alone
        "live": (now, 10.0, False),
    }
    with ExperimentTracker(any_storage.uri) as tracker:
        ids = {name: tracker.start_experiment(name) for name in cases}
        for name, (beat, interval, _) in cases.items():
            any_storage.set_heartbeat(ids[name], beat=beat, interval=interval)
        if sqlite:
            # Text no parser reads, and a number where a time belongs.
            ids["garbled-beat"] = tracker.start_experiment("garbled-beat")
            any_storage.set_heartbeat(ids["garbled-beat"], beat="last tuesday")
            ids["numeric-beat"] = tracker.start_experiment("numeric-beat")
            any_storage.set_heartbeat(ids["numeric-beat"], beat=12345)
        else:
            for name, value in (("future-beat", "infinity"), ("past-beat", "-infinity")):
                ids[name] = tracker.start_experiment(name)
                any_storage.query(
                    f"UPDATE experiments SET heartbeat_at = '{value}' WHERE id = ?", ids[name]
                )

        # Shown as stale before anyone reaps it, by the reaper's own rule.
        listed = {e.id: e for e in tracker.list_experiments()}
        shown = {name for name in cases if listed[ids[name]].is_stale()}
        assert shown == {name for name, (_, _, is_stale) in cases.items() if is_stale}

        reaped = tracker.reap_stale()

        stale = {name for name, (_, _, is_stale) in cases.items() if is_stale}
        if not sqlite:
            stale.add("past-beat")  # silent since the dawn of time: stale
        assert sorted(reaped) == sorted(ids[name] for name in stale)
        assert _statuses(any_storage, ids) == {
            name: "FAILED" if name in stale else "RUNNING" for name in ids
        }
        assert tracker.reap_stale() == []
        huge = tracker.get_experiment(ids["huge-old"]).error
        assert huge is not None and "3 x 86400 s" in huge and "1e+300" in huge
        assert "out of range" in huge
        tiny = tracker.get_experiment(ids["tiny"]).error
        assert tiny is not None and "3 x 0.05 s" in tiny
        assert "out of range" not in (tracker.get_experiment(ids["stale"]).error or "")


def test_a_run_that_missed_three_heartbeats_reads_as_stale(any_storage: Storage) -> None:
    now = datetime.now(UTC)
    with ExperimentTracker(any_storage.uri, heartbeat_interval=10.0) as tracker:
        run = tracker.start_experiment("run")
        record = tracker.get_experiment(run)
        assert record.heartbeat_interval == 10.0
        assert not record.is_stale()
        assert record.is_stale(now + timedelta(seconds=31))
        assert not record.is_stale(now - timedelta(seconds=1))

        any_storage.set_heartbeat(run, beat=now - timedelta(seconds=31), interval=10.0)
        assert tracker.get_experiment(run).is_stale()
        any_storage.set_heartbeat(run, beat=now - timedelta(seconds=29), interval=10.0)
        # Judged at ``now``: by the clock, a loaded machine can take the second left.
        assert not tracker.get_experiment(run).is_stale(now)

        any_storage.set_heartbeat(run, beat=now - HOUR, interval=10.0)
        tracker.end_experiment(run)
        assert not tracker.get_experiment(run).is_stale()  # ended: never stale


def test_a_reaped_run_ends_at_its_last_heartbeat(any_storage: Storage) -> None:
    hour_ago = datetime.now(UTC) - HOUR
    with ExperimentTracker(any_storage.uri) as tracker:
        died = tracker.start_experiment("died 3 s in")
        started = hour_ago.astimezone(UTC).replace(tzinfo=None)
        start = started.isoformat(" ") if any_storage.path is not None else started
        any_storage.query("UPDATE experiments SET start_time = ? WHERE id = ?", start, died)
        any_storage.set_heartbeat(died, beat=hour_ago + timedelta(seconds=3))

        assert tracker.reap_stale() == [died]
        experiment = tracker.get_experiment(died)
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.end_time == experiment.heartbeat_at == hour_ago + timedelta(seconds=3)
    assert experiment.duration == timedelta(seconds=3)
    # When it was reaped is kept in the error text.
    assert experiment.error is not None
    assert f"last heartbeat at {experiment.heartbeat_at.isoformat()}" in experiment.error
    assert "reaped at" in experiment.error
