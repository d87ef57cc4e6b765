"""Ctrl-C and SIGTERM during a run, in a subprocess: INTERRUPTED is recorded, the process
exits of the signal, and the service's port is free again. On SQLite and PostgreSQL.

Two signals close together (GNU ``timeout`` signals the process, then its group) still
record INTERRUPTED; only a third exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest
from helpers.storage import Storage, take_away

from healthchain.tracking import ExperimentStatus, ExperimentTracker

pytestmark = [pytest.mark.slow, pytest.mark.stress]

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


class Child:
    """The interrupt child, its stderr read line by line as it comes."""

    def __init__(self, storage: Storage, entry: str, *, new_session: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), storage.uri, entry, str(_free_port())],
            cwd=CHILD.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
        )
        self.pid = self.process.pid
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.err.append(line)
                self._changed.notify_all()

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        readable, _, _ = select.select([self.process.stdout], [], [], 60)
        assert readable, "the child never reached its handler"
        assert self.process.stdout.readline() == "READY\n"

    def wait_for_stderr(self, text: str) -> None:
        with self._changed:
            found = self._changed.wait_for(lambda: any(text in line for line in self.err), 30)
        assert found, f"the child never wrote {text!r}; stderr: {''.join(self.err)}"

    def finish(self) -> tuple[int, str, str]:
        """Wait for the child to exit (killed if it hangs): exit code, stdout and stderr."""
        try:
            self.process.wait(timeout=30)
        finally:
            self.process.kill()
            self.process.wait()
            self._reader.join(10)
        assert self.process.stdout is not None and self.process.stderr is not None
        out = "" if self.process.stdout.closed else self.process.stdout.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, out, "".join(self.err)


@pytest.mark.parametrize("entry", ["sync", "async"])
@pytest.mark.parametrize("gap", [0.0, 0.001], ids=["0ms", "1ms"])
def test_two_sigterms_close_together_still_record_interrupted(
    entry: str, gap: float, any_storage: Storage
) -> None:
    tries = 3
    for _ in range(tries):
        child = Child(any_storage, entry, new_session=True)
        try:
            child.wait_ready()
            os.kill(child.pid, signal.SIGTERM)
            if gap:
                time.sleep(gap)
                os.kill(child.pid, signal.SIGTERM)
            else:
                os.killpg(child.pid, signal.SIGTERM)  # as GNU timeout does: its group too
        finally:
            returncode, out, err = child.finish()
        assert returncode == -signal.SIGTERM, err
        assert "RETURNED" not in out
        assert "Received SIGTERM: stopping the sandbox run" in err

    with ExperimentTracker(any_storage.uri) as tracker:
        runs = tracker.list_experiments()
    assert len(runs) == tries
    assert [run.status for run in runs] == [ExperimentStatus.INTERRUPTED] * tries
    assert {run.error for run in runs} == {"interrupted by SIGTERM after 0 of 3 requests"}


@contextlib.contextmanager
def storage_away(storage: Storage) -> Iterator[None]:
    """Storage unavailable for real (SQLite locked, PostgreSQL down) until the block ends."""
    away, release = threading.Event(), threading.Event()

    async def outage() -> None:
        async with take_away(storage):
            away.set()
            await anyio.to_thread.run_sync(release.wait)

    thread = threading.Thread(target=asyncio.run, args=(outage(),), name="outage")
    thread.start()
    try:
        assert away.wait(30), f"could not take {storage.kind} storage away"
        yield
    finally:
        release.set()
        thread.join(30)


@pytest.mark.parametrize("entry", ["sync", "async"])
def test_a_third_signal_exits_at_once_while_the_run_winds_down(
    entry: str, any_storage: Storage
) -> None:
    child = Child(any_storage, entry)
    try:
        child.wait_ready()
        # Storage away: writing INTERRUPTED would wait up to the outage bound (60 s).
        with storage_away(any_storage):
            child.process.send_signal(signal.SIGTERM)
            child.wait_for_stderr("Received SIGTERM: stopping the sandbox run")
            child.process.send_signal(signal.SIGTERM)
            child.wait_for_stderr("Received SIGTERM again: still stopping the sandbox run")
            child.process.send_signal(signal.SIGTERM)
            child.process.wait(30)  # storage is still away: nothing more can be written
    finally:
        returncode, out, err = child.finish()

    assert returncode == -signal.SIGTERM, err
    assert "Received SIGTERM 3 times: exiting without waiting" in err
    assert "was not recorded" not in err  # it did not wait for the final write to give up
    assert "RETURNED" not in out
    with ExperimentTracker(any_storage.uri) as tracker:
        (experiment,) = tracker.list_experiments()
    assert experiment.status is ExperimentStatus.RUNNING  # left for reap_stale()
