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
import time
from pathlib import Path
from typing import Any

__all__ = ["eight_writers"]

HERE = Path(__file__).resolve().parent
TASKS = 64
WARMUP = 2 * TASKS


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
    server: str, prefix: str, processes: int, each: int, timeout: float = 600
) -> dict[str, Any]:
    """``processes`` x 64 tasks, ``each`` lifecycles per process on one fresh database:
    the aggregate rate, each process's own rate, and the row count check."""
    from _pg import fresh_database

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    script = str(HERE / "_pg_writers.py")

    def call(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, script, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"_pg_writers.py {args[0]} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    with fresh_database(server, prefix, "writers") as url:
        call("prepare", url)
        procs = [
            subprocess.Popen(
                [sys.executable, script, "write", url, str(each)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(processes)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = proc.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(f"a writer did not start: {line!r} {proc.stderr.read()}")
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            outputs = [proc.communicate(timeout=timeout) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
        failed = [err for proc, (_, err) in zip(procs, outputs, strict=True) if proc.returncode]
        if failed:
            raise RuntimeError(f"{len(failed)} writer(s) failed: {failed[0][-2000:]}")
        reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
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
