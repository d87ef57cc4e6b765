"""Storage goes away in the middle of a sandbox run: the service keeps answering, and
everything is recorded once storage is back."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sandbox_cases import card, define, load_sync
from test_sandbox import run

from healthchain.models import CDSRequest, CDSResponse
from healthchain.tracking import ExperimentStatus, ExperimentTracker

LOCK_SECONDS = 1.0


def test_service_keeps_answering_while_the_database_is_locked(db_path: Path) -> None:
    state: dict[str, Any] = {"answered_while_locked": 0}
    released = threading.Event()

    def hold_lock() -> None:
        # Another writer takes SQLite's exclusive lock for ten times the busy timeout.
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        state["locked"] = True
        time.sleep(LOCK_SECONDS)
        conn.execute("ROLLBACK")
        conn.close()
        released.set()

    def handler(self: Any, request: CDSRequest) -> CDSResponse:  # sync: a worker thread
        if "thread" not in state:  # the first request: RUNNING is already committed
            state["thread"] = threading.Thread(target=hold_lock, daemon=True)
            state["thread"].start()
            while "locked" not in state:
                time.sleep(0.001)
        if not released.is_set():
            state["answered_while_locked"] += 1
        return CDSResponse(cards=[card("still answering")])

    cls = define(handler, load_sync, storage_uri=f"sqlite:///{db_path}?timeout=0.1", num=40)
    result, experiment = run(cls)

    assert released.is_set()
    assert result.status is ExperimentStatus.COMPLETED
    assert len(result.outcomes) == 40
    assert all(outcome.ok for outcome in result.outcomes)
    assert state["answered_while_locked"] >= 2  # requests were served during the outage
    assert experiment.status is ExperimentStatus.COMPLETED
    assert experiment.end_time is not None
    with ExperimentTracker(f"sqlite:///{db_path}") as tracker:
        stats = tracker.request_stats(experiment.id)
    assert (stats.count, stats.failures) == (40, 0)  # every record landed after the outage
