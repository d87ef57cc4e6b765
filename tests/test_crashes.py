"""Processes that die: SIGKILL at several points leaves a sound database, and their
RUNNING experiments are reaped by heartbeat, while live ones never are."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from healthchain.tracking import ExperimentStatus, ExperimentTracker

CHILD = str(Path(__file__).parent / "tracker_child.py")


def test_a_killed_process_is_reaped_and_a_live_one_is_not(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'reap.db'}"
    interval = 0.2
    child = subprocess.Popen(
        [sys.executable, CHILD, "hang", uri, str(interval)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[0] == "started", line
        doomed = line[1]
        with ExperimentTracker(uri, heartbeat_interval=interval) as tracker:
            alive = tracker.start_experiment("alive")
            time.sleep(4 * interval)
            assert tracker.reap_stale() == []  # the child still beats
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            killed_at = time.monotonic()
            while not (reaped := tracker.reap_stale()):
                assert time.monotonic() - killed_at < 10 * interval, "not reaped in time"
                time.sleep(interval / 4)
            experiment = tracker.get_experiment(doomed)
            assert reaped == [doomed]
            assert time.monotonic() - killed_at <= 3 * interval + 2.0
            assert tracker.get_experiment(alive).status is ExperimentStatus.RUNNING
    finally:
        child.kill()  # whatever failed above, never leave it running
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.end_time is not None
    assert experiment.error is not None
    assert f"process {child.pid}" in experiment.error
    assert "stopped reporting" in experiment.error
    conn = sqlite3.connect(tmp_path / "reap.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.0])
def test_sigkill_mid_write_leaves_a_sound_file_and_a_reapable_run(
    tmp_path: Path, delay: float
) -> None:
    path = tmp_path / "crash.db"
    uri = f"sqlite:///{path}"
    interval = 0.2
    with ExperimentTracker(uri):
        pass  # the schema exists: kills land among experiment writes, not schema creation
    child = subprocess.Popen(
        [sys.executable, CHILD, "churn", uri, str(interval)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        words = child.stdout.readline().split()
        assert words[0] == "started", words
        time.sleep(delay)  # 0: before its first churn write; later: in the thick of them
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    killed_at = time.monotonic()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    reaped: list[str] = []
    with ExperimentTracker(uri) as tracker:
        # Everything the dead process left RUNNING goes stale within 3 beats of its last one.
        while tracker.list_experiments({"status": "RUNNING"}):
            assert time.monotonic() - killed_at < 3 * interval + 5.0, "not reaped in time"
            reaped += tracker.reap_stale()
            time.sleep(interval / 4)
        doomed = tracker.get_experiment(words[1])
        churned = tracker.list_experiments({"name": "churn"})
    assert words[1] in reaped
    assert len(reaped) <= 2  # the long run, and at most one churn run in flight
    assert doomed.status is ExperimentStatus.FAILED
    assert doomed.error is not None
    assert "stopped reporting" in doomed.error
    # every churn experiment the child finished is whole: COMPLETED with its component
    for experiment in churned:
        assert len(experiment.components) == 1
        assert experiment.status in (ExperimentStatus.COMPLETED, ExperimentStatus.FAILED)
