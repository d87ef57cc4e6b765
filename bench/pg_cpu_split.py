"""Where the CPU of a 64-task lifecycle goes on PostgreSQL: the client process against
the server's backends, per lifecycle (issue 15's row 2); with ``--metrics``, per metric
point of 10-key ``log_metrics`` calls from 64 tasks (bench_metrics.py's batch row).

``python bench/pg_cpu_split.py --postgres URL [--n 4000] [--repeats 3]``: for each
writer (the tracker from 64 tasks; raw asyncpg 64 per transaction writing the
experiments rows only; raw asyncpg writing every row the tracker writes, in each form
of :mod:`_pg_raw_full`, and its ``from_json`` with the starts and the ends committed
apart, as the tracker commits them), on a fresh database each repeat, a warm-up, then ``n``
lifecycles timed, with the CPU seconds of this process (``time.process_time``: every
thread) and of each server backend connected to that database (``/proc/<pid>/schedstat``,
so the server must run on this machine), and of the WAL writer (a server-wide process:
other clients' work counts there too). Prints medians of the
repeats. The machine's other load slows the wall rates, not the CPU seconds.

``--metrics``: the tracker's 10-key ``log_metrics`` from 64 tasks (its points and their
latest values), against raw asyncpg writing 1,000 points per transaction into
``metric_points`` alone, by ``executemany`` and by binary COPY; ``n`` is points.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from itertools import islice
from typing import Any

from _data import METRIC_KEYS, point_value, spec
from _harness import clock, median
from _ours import TASKS, concurrent, open_tracker
from _pg import fresh_database, new_prefix, server_url
from _pg_raw import experiment_row, rows_only
from _pg_raw_full import APART, BATCH, FORMS, full_rows


def _cpu_s(pid: int) -> float:
    """CPU seconds process ``pid`` has run so far (the scheduler's count, in ns)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
        return int(f.read().split()[0]) / 1e9


async def _server_pids(url: str) -> tuple[list[int], int | None]:
    """The backends connected to ``url``'s database (but the asking one), the WAL writer."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = current_database() OR backend_type = 'walwriter')"
        )
    finally:
        await conn.close()
    backends = [r["pid"] for r in rows if r["backend_type"] == "client backend"]
    wal = next((r["pid"] for r in rows if r["backend_type"] == "walwriter"), None)
    return backends, wal


async def _measured(url: str, n: int, run: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    """``run(n)`` timed, with client, backend and WAL writer CPU µs per lifecycle."""
    backends, wal = await _server_pids(url)
    server0 = {pid: _cpu_s(pid) for pid in backends}
    wal0, client0, t0 = _cpu_s(wal) if wal else 0.0, time.process_time(), clock()
    await run(n)
    wall, client = clock() - t0, time.process_time() - client0
    after, _ = await _server_pids(url)  # a backend opened meanwhile counts from its start
    server = sum(_cpu_s(pid) - server0.get(pid, 0.0) for pid in {*backends, *after})
    wal_s = _cpu_s(wal) - wal0 if wal else 0.0
    return {
        "rate": n / wall,
        "client_us": client / n * 1e6,
        "server_us": server / n * 1e6,
        "wal_us": wal_s / n * 1e6,
        "backends": len({*backends, *after}),
    }


async def ours(url: str, n: int) -> dict[str, float]:
    async with open_tracker(url) as tracker:
        await concurrent(tracker, 0, 4 * TASKS)
        return await _measured(url, n, lambda count: concurrent(tracker, 10**6, count))


async def raw(url: str, n: int, form: str | None) -> dict[str, float]:
    import asyncpg

    async with open_tracker(url):
        pass  # the schema, as the tracker makes it
    conn = await asyncpg.connect(url)
    counter = iter(range(10**9))

    async def write(count: int) -> object:
        if form is None:
            return await rows_only(conn, counter, count // BATCH)
        return await full_rows(conn, counter, experiment_row, form, count // BATCH)

    try:
        await write(4 * BATCH)
        return await _measured(url, n, write)
    finally:
        await conn.close()


async def ours_metrics(url: str, n: int) -> dict[str, float]:
    async with open_tracker(url) as tracker:
        run_id = await tracker.start_experiment(**spec(0))
        steps = iter(range(10**9))

        async def log(points: int) -> None:
            calls = iter(range(points // len(METRIC_KEYS)))

            async def worker() -> None:
                for _ in calls:
                    values = dict.fromkeys(METRIC_KEYS, point_value(next(steps)))
                    await tracker.log_metrics(run_id, values)

            async with asyncio.TaskGroup() as tg:
                for _ in range(TASKS):
                    tg.create_task(worker())

        await log(4 * TASKS * len(METRIC_KEYS))
        return await _measured(url, n, log)


_POINT_COLUMNS = ("experiment_id", "key", "step", "timestamp", "value")
_INSERT_POINT = (
    "INSERT INTO metric_points (experiment_id, key, step, timestamp, value) "
    "VALUES ($1, $2, $3, $4, $5)"
)


async def raw_metrics(url: str, n: int, copy: bool) -> dict[str, float]:
    import datetime as dt

    import asyncpg

    async with open_tracker(url) as tracker:
        run_id = await tracker.start_experiment(**spec(0))
    conn = await asyncpg.connect(url)
    steps = iter(range(10**9))

    async def write(points: int) -> None:
        for _ in range(points // 1000):
            now = dt.datetime.now(dt.UTC)
            rows = [(run_id, "loss", k, now, point_value(k)) for k in islice(steps, 1000)]
            async with conn.transaction():
                if copy:
                    await conn.copy_records_to_table(
                        "metric_points", records=rows, columns=_POINT_COLUMNS
                    )
                else:
                    await conn.executemany(_INSERT_POINT, rows)

    try:
        await write(4000)
        return await _measured(url, n, write)
    finally:
        await conn.close()


# A coroutine function, not just an awaitable one: asyncio.run takes a coroutine.
Writer = Callable[[str, int], Coroutine[Any, Any, dict[str, float]]]

METRIC_WRITERS: dict[str, Writer] = {
    "healthchain, 10-key log_metrics from 64 tasks": ours_metrics,
    "raw, 1,000 points per executemany": lambda url, n: raw_metrics(url, n, copy=False),
    "raw, 1,000 points per COPY": lambda url, n: raw_metrics(url, n, copy=True),
}

WRITERS: dict[str, Writer] = {
    "healthchain, 64 tasks": ours,
    "raw, experiments rows only": lambda url, n: raw(url, n, None),
    **{f"raw, every row ({form})": partial(raw, form=form) for form in [*FORMS, *APART]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=None, help="server URL (or the bench variable)")
    parser.add_argument("--n", type=int, default=None, help="lifecycles (points) per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--metrics", action="store_true", help="metric points, not lifecycles")
    args = parser.parse_args()
    writers, unit = (METRIC_WRITERS, "point") if args.metrics else (WRITERS, "lifecycle")
    n = args.n or (40_000 if args.metrics else 4000)
    server = server_url(args.postgres)
    if server is None:
        raise SystemExit("give --postgres URL or set HEALTHCHAIN_BENCH_POSTGRES_URL")
    spec(0)  # the data module loaded before anything is timed
    prefix = new_prefix()
    print(f"PostgreSQL: databases {prefix}* on the server, dropped after", flush=True)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in writers}
    for _ in range(args.repeats):
        for name, writer in writers.items():
            with fresh_database(server, prefix, "cpu_split") as url:
                results[name].append(asyncio.run(writer(url, n)))
    print(f"medians of {args.repeats} runs of {n:,} {unit}s; CPU µs per {unit}")
    print(
        f"| writer | {unit}s/s | client | server backends (how many) | WAL writer "
        "| 1 / (client + server) | 2 CPUs / all |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        m: dict[str, Any] = {k: median(r[k] for r in runs) for k in runs[0]}
        serial = 1e6 / (m["client_us"] + m["server_us"])
        cap = 2e6 / (m["client_us"] + m["server_us"] + m["wal_us"])
        print(
            f"| {name} | {m['rate']:,.0f} | {m['client_us']:.1f} | {m['server_us']:.1f} "
            f"({m['backends']:.0f}) | {m['wal_us']:.1f} "
            f"| {serial:,.0f}/s | {cap:,.0f}/s |"
        )


if __name__ == "__main__":
    main()
