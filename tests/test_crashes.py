"""Processes that die: SIGKILL at several points leaves a sound database, and their
RUNNING experiments are reaped by heartbeat, while live ones never are.

Each test runs on a SQLite file and on the PostgreSQL server (``any_storage_uri``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import STRESS_SCALE
from helpers.storage import Storage

from healthchain.tracking import Component, Experiment, ExperimentStatus, ExperimentTracker

pytestmark = pytest.mark.stress

CHILD = str(Path(__file__).parent / "tracker_child.py")
INTERVAL = 0.2
"""The children's heartbeat interval: a RUNNING row is stale after 3 of them."""
SLACK = timedelta(seconds=1.0)
"""Scheduling allowance for the parent's polling (every INTERVAL / 4) and one reap write,
on a loaded two-core CI machine; measured 0.04-0.11 s."""
# SIGKILL points in the churn child: 0 lands before its first churn write, the others in
# the thick of them. ``nox -s stress`` adds 36 more, spread over the first 3.6 s.
KILL_DELAYS = [0.0, 0.05, 0.3, 1.0] + [
    round(0.013 + 0.1 * k, 3) for k in range(4 * (STRESS_SCALE - 1))
]
_CHILD_TABLES = ("experiment_tags", "pipeline_components", "requests")


def _assert_sound(storage: Storage) -> None:
    """The database as a crash left it: intact, and no row without its experiment."""
    if storage.path is not None:
        assert storage.query("PRAGMA integrity_check") == [("ok",)]
        assert storage.query("PRAGMA foreign_key_check") == []
    for table in _CHILD_TABLES:
        orphans = storage.query(
            f"SELECT COUNT(*) FROM {table} t LEFT JOIN experiments e ON e.id = t.experiment_id "
            "WHERE e.id IS NULL",
        )
        assert orphans == [(0,)], f"orphan rows in {table}"


def _assert_reaped_in_time(
    experiment: Experiment, looking_since: datetime, reaped_by: datetime
) -> timedelta:
    """Reaped FAILED after 3 heartbeat intervals of silence, and promptly after that.

    "Promptly": once the row was stale and the parent was polling; ``reaped_by`` is when
    the reaping call returned. The run ends at its last heartbeat. Returns the silence.
    """
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error is not None
    assert "stopped reporting" in experiment.error
    assert experiment.end_time is not None
    assert experiment.end_time == experiment.heartbeat_at
    reaped_at = datetime.fromisoformat(experiment.error.rsplit("reaped at ", 1)[1])
    assert reaped_at <= reaped_by
    silence = reaped_at - experiment.end_time
    stale_at = experiment.end_time + timedelta(seconds=3 * INTERVAL)
    assert silence > timedelta(seconds=3 * INTERVAL), "reaped while not yet stale"
    assert reaped_at <= max(stale_at, looking_since) + SLACK, "reaped late"
    return silence


@pytest.mark.slow
def test_a_killed_process_is_reaped_and_a_live_one_is_not(any_storage: Storage) -> None:
    uri = any_storage.uri
    child = subprocess.Popen(
        [sys.executable, CHILD, "hang", uri, str(INTERVAL)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[0] == "started", line
        doomed = line[1]
        with ExperimentTracker(uri, heartbeat_interval=INTERVAL) as tracker:
            alive = tracker.start_experiment("alive")
            first_beat = tracker.get_experiment(doomed).heartbeat_at
            # Both processes beat: for 6 intervals, twice the staleness limit, nothing is
            # stale however often we look.
            watch_until = time.monotonic() + 6 * INTERVAL
            while time.monotonic() < watch_until:
                assert tracker.reap_stale() == []
                time.sleep(INTERVAL / 4)
            before_kill = tracker.get_experiment(doomed)
            assert before_kill.status is ExperimentStatus.RUNNING
            assert first_beat is not None and before_kill.heartbeat_at is not None
            assert before_kill.heartbeat_at > first_beat  # it was beating, not just young
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed_at = datetime.now(UTC)
            while not (reaped := tracker.reap_stale()):
                assert datetime.now(UTC) - killed_at < 10 * SLACK, "not reaped"
                time.sleep(INTERVAL / 4)
            reaped_by = datetime.now(UTC)
            experiment = tracker.get_experiment(doomed)
            assert reaped == [doomed]
            assert tracker.get_experiment(alive).status is ExperimentStatus.RUNNING
    finally:
        child.kill()  # whatever failed above, never leave it running
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    # It beat until it died, so it is reaped within 3 intervals of the kill, never before.
    assert experiment.heartbeat_at is not None
    assert killed_at - experiment.heartbeat_at <= timedelta(seconds=INTERVAL) + SLACK
    _assert_reaped_in_time(experiment, killed_at, reaped_by)
    assert experiment.error is not None
    assert f"process {child.pid}" in experiment.error
    _assert_sound(any_storage)


@pytest.mark.slow
@pytest.mark.parametrize("delay", KILL_DELAYS)
def test_sigkill_mid_write_leaves_a_sound_database_and_a_reapable_run(
    any_storage: Storage, delay: float
) -> None:
    uri = any_storage.uri
    with ExperimentTracker(uri):
        pass  # the schema exists: kills land among experiment writes, not schema creation
    child = subprocess.Popen(
        [sys.executable, CHILD, "churn", uri, str(INTERVAL)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        words = child.stdout.readline().split()
        assert words[0] == "started", words
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    killed_at = datetime.now(UTC)
    assert child.returncode == -signal.SIGKILL
    _assert_sound(any_storage)

    reaped: list[str] = []
    with ExperimentTracker(uri) as tracker:
        # Everything the dead process left RUNNING goes stale 3 beats after its last one.
        while tracker.list_experiments({"status": "RUNNING"}):
            assert datetime.now(UTC) - killed_at < 10 * SLACK, "not reaped"
            reaped += tracker.reap_stale()
            time.sleep(INTERVAL / 4)
        reaped_by = datetime.now(UTC)
        doomed = tracker.get_experiment(words[1])
        churned = sorted(tracker.list_experiments({"name": "churn"}), key=lambda e: e.tags["seq"])
        logged = [r.index for r in tracker.list_requests(doomed.id)]
    _assert_sound(any_storage)

    # The child ran start(seq) -> log 20 requests -> end, each committed before the next:
    # the kill may cut only the last of these steps, and no step in half.
    assert [e.tags for e in churned] == [{"seq": 20 * i} for i in range(len(churned))]
    completed = [e for e in churned if e.status is ExperimentStatus.COMPLETED]
    assert churned[: len(completed)] == completed  # only the newest one may be unfinished
    in_flight = churned[len(completed) :]
    assert len(in_flight) <= 1
    assert sorted(reaped) == sorted([doomed.id] + [e.id for e in in_flight])
    _assert_reaped_in_time(doomed, killed_at, reaped_by)
    for experiment in in_flight:
        _assert_reaped_in_time(experiment, killed_at, reaped_by)
    assert logged == list(range(len(logged)))
    assert len(logged) % 20 == 0
    assert 20 * len(completed) <= len(logged) <= 20 * len(churned)

    # Every churn experiment is whole in the tables too, not only in its row's JSON.
    for experiment in churned:
        assert experiment.components == (Component("x", None, None, 0),)
    components = any_storage.query(
        "SELECT e.id, c.name, c.position FROM experiments e "
        "JOIN pipeline_components c ON c.experiment_id = e.id WHERE e.name = 'churn'",
    )
    assert sorted(components) == sorted((e.id, "x", 0) for e in churned)
    tags = any_storage.query(
        "SELECT e.id, t.key, t.value FROM experiments e "
        "JOIN experiment_tags t ON t.experiment_id = e.id WHERE e.name = 'churn'",
    )
    assert sorted(tags) == sorted((e.id, "seq", str(e.tags["seq"])) for e in churned)
