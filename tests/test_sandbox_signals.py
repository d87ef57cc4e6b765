"""Ctrl-C and SIGTERM during a run, in a subprocess: INTERRUPTED is recorded, the process
exits of the signal, and the service's port is free again. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from storage import Storage

from healthchain.tracking import ExperimentStatus, ExperimentTracker

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("sandbox_interrupt_child.py")
HOST = "127.0.0.1"


def _free_port() -> int:
    """A port free now, below the ephemeral range so that no other socket is given it."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except OSError:
        ephemeral = 49152  # the IANA range, used by macOS
    for _ in range(100):
        port = random.randrange(max(1024, ephemeral - 10000), ephemeral)
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port found")


@pytest.mark.parametrize("entry", ["sync", "async"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_interrupts_the_run_and_records_interrupted(
    entry: str, signum: signal.Signals, any_storage: Storage
) -> None:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, str(CHILD), any_storage.uri, entry, str(port)],
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
        # The service is on the port we gave it, so "refused" below means something.
        socket.create_connection((HOST, port), timeout=10).close()
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

    # The port is released: nothing listens, and the next sandbox can bind it at once
    # (it binds with SO_REUSEADDR, as here; a closed connection may linger in TIME_WAIT).
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((HOST, port))
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((HOST, port))
        again.listen()

    with ExperimentTracker(any_storage.uri) as tracker:
        (experiment,) = tracker.list_experiments()
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == f"interrupted by {signum.name} after 0 of 3 requests"
    assert experiment.end_time is not None
