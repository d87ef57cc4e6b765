"""healthchain side of the benchmark, run in its own subprocess: ``_ours.py SCENARIO OUT OPTS``.

Scenarios: ``micro`` (sequential and 64-task lifecycles, event-loop lag under load) and
``data`` (populate N experiments with 64 concurrent tasks, then the ``environment`` tag
filter and ``get_experiment``; with ``team``, only the 1 % ``team`` filter, interleaved
with a plain sqlite3 ``json_extract`` scan of the same file). Only the stdlib and the
tracker are imported, so the peak RSS this process reports is the tracker's.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from _child import emit, parse_args
from _data import PROJECT, TEAM_QUERIES, spec
from _harness import Stopwatch, clock, median, percentile
from _pg import analyze, pg_database

from healthchain.tracking import AsyncExperimentTracker

TASKS = 64
LIST_FILTERS: dict[str, Any] = {"tags": {"environment": "production"}}
"""``data``'s list: a third of the experiments match."""


def open_tracker(target: str) -> AsyncExperimentTracker:
    """The tracker on a SQLite file path, or on a database URL (PostgreSQL runs)."""
    uri = target if "://" in target else f"sqlite:///{target}"
    return AsyncExperimentTracker(uri, project_name=PROJECT)


def where(opts: dict[str, Any], workdir: str, name: str) -> str:
    """The database a scenario uses: the PostgreSQL database made for this subprocess
    (``opts["url"]``), else the SQLite file ``name`` in ``workdir``."""
    return opts.get("url") or os.path.join(workdir, f"{name}.db")


async def lifecycle(tracker: AsyncExperimentTracker, i: int) -> str:
    experiment_id = await tracker.start_experiment(**spec(i))
    await tracker.end_experiment(experiment_id)
    return experiment_id


async def sequential(tracker: AsyncExperimentTracker, lo: int, n: int) -> float:
    """Lifecycles per second, awaited one after another."""
    t0 = clock()
    for i in range(lo, lo + n):
        await lifecycle(tracker, i)
    return n / (clock() - t0)


async def concurrent(
    tracker: AsyncExperimentTracker, lo: int, n: int, tasks: int = TASKS
) -> tuple[float, list[str]]:
    """Lifecycles per second from ``tasks`` tasks sharing ``n`` lifecycles; also the ids."""
    ids: list[str] = []
    counter = iter(range(lo, lo + n))

    async def worker() -> None:
        for i in counter:
            ids.append(await lifecycle(tracker, i))

    t0 = clock()
    async with asyncio.TaskGroup() as tg:
        for _ in range(tasks):
            tg.create_task(worker())
    return n / (clock() - t0), ids


async def sleeper(stop: asyncio.Event, samples: list[float]) -> None:
    """Oversleep of ``asyncio.sleep(0.001)`` in ms, one sample per tick."""
    while not stop.is_set():
        t0 = clock()
        await asyncio.sleep(0.001)
        samples.append((clock() - t0 - 0.001) * 1000)


def lag_stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": median(ordered),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1],
        "ticks": len(ordered),
    }


async def lag(write: Callable[[int], Awaitable[object]], seconds: float) -> dict[str, Any]:
    """A 1 ms sleeper on the idle loop for 1 s, then beside ``TASKS`` tasks awaiting
    ``write(i)`` (i = 0, 1, ...) as fast as they can for ``seconds``."""
    idle: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(sleeper(stop, idle))
    await asyncio.sleep(1.0)
    stop.set()
    await task

    samples: list[float] = []
    stop = asyncio.Event()
    done = 0
    counter = iter(range(10**12))

    async def writer() -> None:
        nonlocal done
        for i in counter:
            if stop.is_set():
                return
            await write(i)
            done += 1

    async with asyncio.TaskGroup() as tg:
        for _ in range(TASKS):
            tg.create_task(writer())
        await asyncio.sleep(0.2)  # writers saturated before sampling starts
        sample_task = tg.create_task(sleeper(stop, samples))
        t0 = clock()
        start_done = done
        await asyncio.sleep(seconds)
        stop.set()
        rate = (done - start_done) / (clock() - t0)
        await sample_task
    return {"idle": lag_stats(idle), "load": lag_stats(samples), "writes_per_s": rate}


async def micro(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    n, blocks, warmup = opts["n"], opts["blocks"], opts.get("warmup", 50)
    m = opts["concurrent_n"]
    result: dict[str, Any] = {}
    async with open_tracker(where(opts, workdir, "seq")) as tracker:
        await sequential(tracker, 0, warmup)
        rates = [await sequential(tracker, warmup + b * n, n) for b in range(blocks)]
        result["seq_rates"], result["seq_rate"] = rates, median(rates)
    async with open_tracker(where(opts, workdir, "conc")) as tracker:
        await concurrent(tracker, 0, 4 * TASKS)
        rates = [(await concurrent(tracker, (b + 1) * m, m))[0] for b in range(blocks)]
        result["conc_rates"], result["conc_rate"] = rates, median(rates)
    if opts.get("lag_s"):
        async with open_tracker(where(opts, workdir, "lag")) as tracker:
            result["lag"] = await lag(lambda i: lifecycle(tracker, i), opts["lag_s"])
    return result


async def data(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    n, reps, gets = opts["n"], opts["reps"], opts["gets"]
    path = where(opts, workdir, "data")
    result: dict[str, Any] = {"n": n}
    async with open_tracker(path) as tracker:
        result["populate_rate"], ids = await concurrent(tracker, 0, n)
        result["populate_s"] = n / result["populate_rate"]
    await asyncio.to_thread(analyze, opts.get("url"))  # as MLflow's is: see _pg.analyze

    # Queries on a freshly opened tracker, as a reader process would see the file.
    async with open_tracker(path) as tracker:
        if opts.get("team"):
            result.update(await team_filter(tracker, path, n, reps))
            return result
        expected = (n + 2) // 3
        watch = Stopwatch()
        for _ in range(reps + 1):
            with watch:
                rows = await tracker.list_experiments(filters=LIST_FILTERS)
            assert len(rows) == expected, (len(rows), expected)
            del rows  # one result alive at a time: RSS is the tracker's, not the loop's
        result["list_times"] = watch.measured
        result["list_s"] = median(watch.measured)

        rng = random.Random(1)
        picks = [rng.choice(ids) for _ in range(gets + 20)]
        for experiment_id in picks[:20]:
            await tracker.get_experiment(experiment_id)
        t0 = clock()
        for experiment_id in picks[20:]:
            experiment = await tracker.get_experiment(experiment_id)
        result["get_us"] = (clock() - t0) / gets * 1e6
        assert len(experiment.components) == 3, experiment
    if opts.get("url"):
        from _pg_list_floor import floor_list  # the driver's own figures on the same database
        from _pg_raw import raw_reads

        result.update(await raw_reads(opts["url"], picks, reps, expected))
        floor = await floor_list(opts["url"], LIST_FILTERS, None, reps, expected)
        result["raw_list_s"], result["raw_list_times"] = floor["seconds"], floor["times"]
    return result


async def team_filter(
    tracker: AsyncExperimentTracker, path: str, n: int, reps: int
) -> dict[str, Any]:
    """The 1 % ``team`` filter against a plain sqlite3 json_extract scan, interleaved."""
    con = sqlite3.connect(path)
    scan_sql = "SELECT * FROM experiments WHERE json_extract(tags, '$.team') = ?"
    ours_t: list[float] = []
    scan_t: list[float] = []
    values = [TEAM_QUERIES[k % len(TEAM_QUERIES)] for k in range(reps + 1)]
    for k, value in enumerate(values):
        expected = sum(1 for i in range(n) if i % 100 == int(value[-3:]))
        t0 = clock()
        scanned = con.execute(scan_sql, (value,)).fetchall()
        t1 = clock()
        rows = await tracker.list_experiments(filters={"tags": {"team": value}})
        t2 = clock()
        assert len(scanned) == len(rows) == expected, (len(scanned), len(rows), expected)
        if k:  # the first pair warms both up
            scan_t.append(t1 - t0)
            ours_t.append(t2 - t1)
    con.close()
    return {
        "team_s": median(ours_t),
        "team_times": ours_t,
        "scan_s": median(scan_t),
        "scan_times": scan_t,
        "team_matches": len(rows),
    }


def main() -> None:
    scenario, out, opts = parse_args()
    run = {"micro": micro, "data": data}[scenario]
    with (
        tempfile.TemporaryDirectory(prefix="bench-ours-", dir=opts.get("tmp")) as workdir,
        pg_database(opts, f"ours_{scenario}") as url,  # None: SQLite files in workdir
    ):
        result = asyncio.run(run({**opts, "url": url}, workdir))
    emit(out, result)


if __name__ == "__main__":
    main()
