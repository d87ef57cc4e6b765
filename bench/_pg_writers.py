"""8 processes x 64 tasks writing lifecycles into one PostgreSQL database at once.

:func:`eight_writers` (called by ``run.py``'s PostgreSQL run) makes a fresh database,
has the tracker create its schema there (``_pg_writers.py prepare``), starts the writer
processes (``_pg_writers.py write URL N``), each of which opens its tracker, warms up
and says ``ready``; once all are ready it tells them ``go`` together. Each writes ``N``
lifecycles from 64 tasks and reports when it started and ended on the system-wide
monotonic clock, so the aggregate rate is all lifecycles over the span from the first
start to the last end. Then ``_pg_writers.py verify`` counts the rows: every lifecycle
written, all COMPLETED, none lost.

Stdlib only at import; the subprocesses import the tracker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["eight_writers", "start_together"]

HERE = Path(__file__).resolve().parent
TASKS = 64
WARMUP = 2 * TASKS
READY_TIMEOUT = 300.0
"""Seconds the writers have, all together, to open their trackers and warm up."""


async def _prepare(url: str) -> dict[str, Any]:
    from _ours import open_tracker

    async with open_tracker(url):
        pass
    return {}


async def _write(url: str, n: int) -> dict[str, Any]:
    from _ours import concurrent, open_tracker

    async with open_tracker(url) as tracker:
        await concurrent(tracker, 10**9 + os.getpid() * 10**4, WARMUP)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go", the same moment for all
        t0 = time.monotonic()
        await concurrent(tracker, 0, n)
        t1 = time.monotonic()
    return {"start": t0, "end": t1, "n": n, "rate": n / (t1 - t0)}


async def _verify(url: str) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM experiments GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


def eight_writers(
    server: str,
    prefix: str,
    processes: int,
    each: int,
    timeout: float = 600,
    ready_timeout: float = READY_TIMEOUT,
) -> dict[str, Any]:
    """``processes`` x 64 tasks, ``each`` lifecycles per process on one fresh database:
    the aggregate rate, each process's own rate, and the row count check."""
    from _pg import fresh_database

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    script = str(HERE / "_pg_writers.py")

    def call(*args: str) -> dict[str, Any]:
        try:
            done = subprocess.run(
                [sys.executable, script, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"_pg_writers.py {args[0]} did not finish within {timeout:g} s"
            ) from None
        if done.returncode:
            raise RuntimeError(f"_pg_writers.py {args[0]} failed: {done.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    with fresh_database(server, prefix, "writers") as url:
        call("prepare", url)
        command = [sys.executable, script, "write", url, str(each)]
        outputs = start_together(
            [command] * processes, env=env, ready_timeout=ready_timeout, timeout=timeout
        )
        reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
        counts = call("verify", url)
    span = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    warm = processes * WARMUP
    expected = processes * each + warm
    return {
        "processes": processes,
        "tasks": TASKS,
        "each": each,
        "aggregate_rate": processes * each / span,
        "span_s": span,
        "process_rates": [r["rate"] for r in reports],
        "rows": counts,
        "expected_rows": expected,
        "none_lost": counts == {"COMPLETED": expected},
    }


def start_together(
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    timeout: float = 600,
) -> list[str]:
    """Start the writers, wait until each has printed ``ready`` (``ready_timeout``
    seconds for all), tell them ``go`` together and return their outputs, each within
    ``timeout`` seconds of ``go``.

    A writer that is late, exits or fails is a ``RuntimeError`` naming it and what it was
    doing; every writer still running is killed on the way out, whatever happened.
    """
    procs: list[subprocess.Popen[str]] = []
    try:
        for command in commands:
            procs.append(
                subprocess.Popen(
                    list(command),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=None if env is None else dict(env),
                )
            )
        _wait_until_ready(procs, ready_timeout)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        deadline = time.monotonic() + timeout
        outputs: list[tuple[str, str]] = []
        for proc in procs:
            try:
                outputs.append(proc.communicate(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"{_name(proc, procs)} did not finish its lifecycles within {timeout:g} s "
                    "of 'go'; all writers killed"
                ) from None
        failed = [
            f"{_name(proc, procs)} exited with {proc.returncode}: {err[-2000:]}"
            for proc, (_, err) in zip(procs, outputs, strict=True)
            if proc.returncode
        ]
        if failed:
            raise RuntimeError(f"{len(failed)} writer(s) failed; first: {failed[0]}")
        return [out for out, _ in outputs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            proc.communicate()  # reaps it and closes its pipes


def _wait_until_ready(procs: list[subprocess.Popen[str]], ready_timeout: float) -> None:
    """Each writer's first line, read in a thread so the wait has a deadline; a writer
    killed by the caller's cleanup ends its thread's read."""
    lines: dict[int, str] = {}

    def read_first_line(index: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        lines[index] = proc.stdout.readline()

    readers = [
        threading.Thread(target=read_first_line, args=(i, proc), daemon=True)
        for i, proc in enumerate(procs)
    ]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + ready_timeout
    for index, (proc, reader) in enumerate(zip(procs, readers, strict=True)):
        reader.join(max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(
                f"{_name(proc, procs)} did not say 'ready' within {ready_timeout:g} s: it was "
                f"opening its tracker and writing its warm-up lifecycles; all writers killed"
                + (f"; its stderr: {err[-2000:]}" if err.strip() else "")
            )
        if lines[index].strip() != "ready":
            _, err = proc.communicate()
            raise RuntimeError(
                f"{_name(proc, procs)} exited (code {proc.returncode}) before saying 'ready': "
                f"{lines[index].strip()!r} {err[-2000:]}"
            )


def _name(proc: subprocess.Popen[str], procs: list[subprocess.Popen[str]]) -> str:
    return f"writer {procs.index(proc) + 1} of {len(procs)} (pid {proc.pid})"


def main() -> None:
    mode, url, *rest = sys.argv[1:]
    if mode == "prepare":
        result = asyncio.run(_prepare(url))
    elif mode == "write":
        result = asyncio.run(_write(url, int(rest[0])))
    elif mode == "verify":
        result = asyncio.run(_verify(url))
    else:
        raise SystemExit(f"unknown mode {mode!r}: prepare, write or verify")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
