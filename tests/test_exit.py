"""A process ends while one of its experiments is still open: it exits promptly, and the
experiment reads INTERRUPTED with an error saying why.

Real child processes (``tracker_child.py``), each bounded by a timeout, on a SQLite file
and on the PostgreSQL server.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.storage import Storage

from healthchain.tracking import ExperimentStatus, ExperimentTracker

CHILD = str(Path(__file__).parent / "tracker_child.py")
PROCESS_EXITED = "the process exited while the experiment was open"
CLOSED_WHILE_OPEN = "the tracker was closed while the experiment was open"


EXIT_MODES = {
    "exit-thread": PROCESS_EXITED,
    "exit-generator": PROCESS_EXITED,
    "exit-manual": PROCESS_EXITED,
    "exit-sys-exit": f"{PROCESS_EXITED} (SystemExit: 3)",
    "exit-dropped": CLOSED_WHILE_OPEN,  # closed when collected, which exit waits for
    "exit-async-closed": CLOSED_WHILE_OPEN,
    "exit-async-open": "CancelledError",  # asyncio.run() cancels the task inside track()
}


@pytest.mark.parametrize("mode", list(EXIT_MODES))
def test_process_exits_promptly_with_an_experiment_still_open(
    any_storage: Storage, mode: str
) -> None:
    child = subprocess.run(
        [sys.executable, CHILD, mode, any_storage.uri],
        capture_output=True,
        text=True,
        timeout=60,  # the bug this guards against: a process that never exits
    )
    assert child.returncode == (3 if mode == "exit-sys-exit" else 0), child.stderr
    assert "Traceback" not in child.stderr and "Exception ignored" not in child.stderr
    words = child.stdout.split()
    assert words[0] == "started", child.stdout
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment = tracker.get_experiment(words[1])
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == EXIT_MODES[mode]
    assert experiment.end_time is not None
