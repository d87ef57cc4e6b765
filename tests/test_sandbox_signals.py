"""Ctrl-C and SIGTERM during a run, in a subprocess: INTERRUPTED is recorded, the process exits."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from healthchain.tracking import ExperimentStatus, ExperimentTracker

CHILD = Path(__file__).with_name("sandbox_interrupt_child.py")


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["sync", "async"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_interrupts_the_run_and_records_interrupted(
    entry: str, signum: signal.Signals, storage_uri: str
) -> None:
    child = subprocess.Popen(
        [sys.executable, str(CHILD), storage_uri, entry],
        cwd=CHILD.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # Wait for the handler to be reached (bounded, so a broken child cannot hang us).
        readable, _, _ = select.select([child.stdout], [], [], 60)
        assert readable, "the child never reached its handler"
        assert child.stdout.readline() == "READY\n"
        child.send_signal(signum)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()

    # The signal is re-delivered once INTERRUPTED is written: the process dies of it.
    assert child.returncode == -signum, err
    assert "RETURNED" not in out
    assert f"Received {signum.name}: stopping the sandbox run" in err
    assert "Exception in ASGI application" not in err  # in-flight requests end quietly

    with ExperimentTracker(storage_uri) as tracker:
        (experiment,) = tracker.list_experiments()
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == f"interrupted by {signum.name} after 0 of 3 requests"
    assert experiment.end_time is not None
