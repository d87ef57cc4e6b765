"""Several processes writing to one database at once: nothing lost, nothing corrupted."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from helpers import STRESS_SCALE

from healthchain.tracking import AsyncExperimentTracker, ExperimentStatus

pytestmark = [pytest.mark.anyio, pytest.mark.stress]

CHILD = str(Path(__file__).parent / "tracker_child.py")
PROCESSES, EACH = 8, 200 * STRESS_SCALE
TASKS, EACH_FROM_TASKS = 64, 2 * 64 * STRESS_SCALE


def _run_writers(
    uri: str, mode: str = "write", *args: str
) -> list[subprocess.CompletedProcess[str]]:
    """``PROCESSES`` children of ``tracker_child.py MODE URI ARGS`` at once, to their end."""
    # Load generators, not subjects of dev mode: its slow-step diagnostics (a task step
    # over 100 ms, routine with 8 processes on 2 cores) would read as errors below.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, mode, uri, *(args or (str(EACH),))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


async def test_eight_processes_lose_nothing(any_storage_uri: str, db_path: Path) -> None:
    async with AsyncExperimentTracker(any_storage_uri):
        pass  # schema in place; the race on a fresh file has its own test
    results = await anyio.to_thread.run_sync(_run_writers, any_storage_uri)
    await _all_written(any_storage_uri, results, EACH)

    if any_storage_uri.startswith("sqlite"):

        def integrity() -> str:
            conn = sqlite3.connect(db_path)
            try:
                return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
            finally:
                conn.close()

        assert await anyio.to_thread.run_sync(integrity) == "ok"


async def test_eight_processes_of_64_tasks_lose_nothing_on_postgresql(postgres_uri: str) -> None:
    # The load of bench/run.py's PostgreSQL row 5: concurrent tasks in each process, so
    # each writer batches while the others' transactions run on the same server.
    async with AsyncExperimentTracker(postgres_uri):
        pass
    results = await anyio.to_thread.run_sync(
        _run_writers, postgres_uri, "write-tasks", str(EACH_FROM_TASKS), str(TASKS)
    )
    await _all_written(postgres_uri, results, EACH_FROM_TASKS)


async def _all_written(
    uri: str, results: list[subprocess.CompletedProcess[str]], each: int
) -> None:
    """Every child ended well and silently, and every lifecycle of each is there, whole."""
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
        assert result.stderr == ""  # no error surfaced, not even a logged one

    async with AsyncExperimentTracker(uri) as tracker:
        experiments = await tracker.list_experiments()
    assert len(experiments) == PROCESSES * each
    assert all(e.status is ExperimentStatus.COMPLETED for e in experiments)
    assert all(len(e.components) == 2 for e in experiments)
    per_writer: dict[object, set[int]] = {}
    for e in experiments:
        per_writer.setdefault(e.tags["writer"], set()).add(e.tags["i"])
    assert len(per_writer) == PROCESSES
    assert all(seen == set(range(each)) for seen in per_writer.values())
