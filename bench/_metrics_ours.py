"""healthchain side of ``bench_metrics.py``, one scenario per subprocess:
``_metrics_ours.py SCENARIO OUT OPTS``.

Each scenario opens a fresh SQLite file and logs to one experiment, as a service or a
training loop does. Scenarios: ``sequential`` (awaited ``log_metric`` one after another),
``concurrent`` (``log_metric`` from 64 tasks), ``batch`` (``log_metrics`` of the 10 keys
of ``METRIC_KEYS`` from 64 tasks), ``lag`` (a 1 ms sleeper while 64 tasks log flat out),
``history`` (``get_metric_history`` of a key with N points, on a freshly opened tracker;
``history_floor``, its floor on PostgreSQL: ``_pg_history_floor``),
``search`` (``list_experiments`` filtering on ``acc`` and ordering by ``p95_ms`` over N
experiments; ``search_floor``, its floor on PostgreSQL: ``_pg_list_floor``) and
``sqlite`` (the physical reference: plain ``sqlite3`` inserting 1,000-row
batches into the tracker's own ``metric_points`` table, with the tracker's pragmas).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from _child import emit, parse_args
from _data import METRIC_KEYS, PROJECT, measured, point_value, spec
from _harness import Stopwatch, clock, median
from _ours import TASKS, lag, open_tracker
from _pg import analyze, pg_database

from healthchain.tracking import AsyncExperimentTracker

SEARCH_FILTERS: dict[str, Any] = {"project": PROJECT, "metrics": {"acc": (">", 0.5)}}
SEARCH_ORDER = "metrics.p95_ms"
BATCH_ROWS = 1000


# The PostgreSQL database this subprocess made (``main``), when run against a server.
POSTGRES_URL: str | None = None


def db(workdir: str, name: str) -> str:
    """Where scenario ``name`` stores: this subprocess's PostgreSQL database, else a file."""
    return POSTGRES_URL or os.path.join(workdir, f"{name}.db")


@contextlib.asynccontextmanager
async def fresh(workdir: str, name: str) -> AsyncIterator[tuple[AsyncExperimentTracker, str]]:
    """An open tracker on a new database, and a running experiment to log to."""
    async with open_tracker(db(workdir, name)) as tracker:
        yield tracker, await tracker.start_experiment(name=name)


async def from_tasks(calls: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Seconds for ``TASKS`` tasks to make ``calls`` calls between them."""
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            await call(i)

    t0 = clock()
    async with asyncio.TaskGroup() as tg:
        for _ in range(TASKS):
            tg.create_task(worker())
    return clock() - t0


async def blocks_of(
    opts: dict[str, Any], points_per_call: int, run: Callable[[int], Awaitable[float]]
) -> dict[str, Any]:
    """Points per second of ``opts["blocks"]`` blocks of ``opts["calls"]`` calls, after a
    warm-up block of ``opts["warmup"]`` calls."""
    await run(opts.get("warmup", 4 * TASKS))
    rates = []
    for _ in range(opts["blocks"]):
        rates.append(opts["calls"] * points_per_call / await run(opts["calls"]))
    return {"rates": rates, "rate": median(rates)}


async def sequential(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    async with fresh(workdir, "sequential") as (tracker, experiment_id):

        async def run(calls: int) -> float:
            t0 = clock()
            for i in range(calls):
                await tracker.log_metric(experiment_id, "loss", point_value(i))
            return clock() - t0

        return await blocks_of(opts, 1, run)


async def concurrent(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    async with fresh(workdir, "concurrent") as (tracker, experiment_id):

        async def run(calls: int) -> float:
            return await from_tasks(
                calls, lambda i: tracker.log_metric(experiment_id, "loss", point_value(i))
            )

        return await blocks_of(opts, 1, run)


async def batch(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    async with fresh(workdir, "batch") as (tracker, experiment_id):

        async def run(calls: int) -> float:
            return await from_tasks(
                calls,
                lambda i: tracker.log_metrics(
                    experiment_id, dict.fromkeys(METRIC_KEYS, point_value(i))
                ),
            )

        return await blocks_of(opts, len(METRIC_KEYS), run)


async def lag_while_logging(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """A 1 ms sleeper on the loop, idle for 1 s, then while 64 tasks ``log_metric`` flat out."""
    async with fresh(workdir, "lag") as (tracker, experiment_id):
        return await lag(
            lambda i: tracker.log_metric(experiment_id, "loss", point_value(i)), opts["seconds"]
        )


async def _with_history(n: int, workdir: str) -> str:
    """The experiment just given ``n`` points of ``loss`` (steps 0 to n - 1) by 64 tasks."""
    async with fresh(workdir, "history") as (tracker, experiment_id):
        await from_tasks(
            n, lambda i: tracker.log_metric(experiment_id, "loss", point_value(i), step=i)
        )
    return experiment_id


async def history(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    n, reps = opts["n"], opts["reps"]
    experiment_id = await _with_history(n, workdir)
    # Read on a freshly opened tracker, as a dashboard or notebook process would.
    async with open_tracker(db(workdir, "history")) as tracker:
        watch = Stopwatch()
        for _ in range(reps + 1):
            with watch:
                points = await tracker.get_metric_history(experiment_id, "loss")
            assert len(points) == n, (len(points), n)
            assert points[-1].step == n - 1 and points[-1].value == point_value(n - 1)
    return {**watch.summary(), "points": n}


async def _searchable(opts: dict[str, Any], workdir: str) -> tuple[str, int, float]:
    """Where N experiments were just logged for ``search``, how many match, and the
    seconds populating took."""
    path = db(workdir, "search")
    async with open_tracker(path) as tracker:

        async def one(i: int) -> None:
            experiment_id = await tracker.start_experiment(**spec(i))
            await tracker.log_metrics(experiment_id, measured(i), step=0)
            await tracker.end_experiment(experiment_id)

        populate_s = await from_tasks(opts["n"], one)
    await asyncio.to_thread(analyze, POSTGRES_URL)  # as MLflow's is: see _pg.analyze
    expected = sum(1 for i in range(opts["n"]) if measured(i)["acc"] > 0.5)
    return path, expected, populate_s


async def search(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    path, expected, populate_s = await _searchable(opts, workdir)
    async with open_tracker(path) as tracker:
        watch = Stopwatch()
        for _ in range(opts["reps"] + 1):
            with watch:
                found = await tracker.list_experiments(SEARCH_FILTERS, order_by=SEARCH_ORDER)
            assert len(found) == expected, (len(found), expected)
    return {
        **watch.summary(),
        "matches": len(found),
        "first": [experiment.name for experiment in found[:20]],
        "populate_s": populate_s,
    }


async def search_floor(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """``search``'s two queries in raw asyncpg, records undecoded (PostgreSQL only)."""
    from _pg_list_floor import floor_list

    path, expected, _ = await _searchable(opts, workdir)
    return await floor_list(path, SEARCH_FILTERS, SEARCH_ORDER, opts["reps"], expected)


async def history_floor(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """``history``'s read in raw asyncpg, two ways (PostgreSQL only)."""
    from _pg_history_floor import floor_history

    experiment_id = await _with_history(opts["n"], workdir)
    return await floor_history(
        db(workdir, "history"), experiment_id, "loss", opts["reps"], opts["n"]
    )


async def physical(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Plain sqlite3, 1,000 rows per transaction, into the table the tracker writes."""
    path = os.path.join(workdir, "sqlite.db")
    async with fresh(workdir, "sqlite") as (_, experiment_id):
        pass  # the schema and one experiment, written by the tracker
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        con.execute(f"PRAGMA {pragma}")
    sql = (
        "INSERT INTO metric_points (experiment_id, key, step, timestamp, value) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    step = 0

    def insert(batches: int) -> float:
        nonlocal step
        t0 = clock()
        for _ in range(batches):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            rows = [
                (experiment_id, "loss", s, stamp, point_value(s))
                for s in range(step, step + BATCH_ROWS)
            ]
            step += BATCH_ROWS
            con.execute("BEGIN")
            con.executemany(sql, rows)
            con.execute("COMMIT")
        return batches * BATCH_ROWS / (clock() - t0)

    insert(2)
    rates = [insert(opts["batches"]) for _ in range(opts["blocks"])]
    con.close()
    return {"rates": rates, "rate": median(rates)}


async def physical_pg(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Plain asyncpg, 1,000 rows per ``executemany`` transaction, into the tracker's table."""
    from _pg_raw import raw_metric_points

    async with fresh(workdir, "asyncpg") as (_, experiment_id):
        pass  # the schema and one experiment, written by the tracker
    return await raw_metric_points(db(workdir, "asyncpg"), experiment_id, opts)


# Coroutine functions, not just awaitable ones: asyncio.run takes a coroutine.
SCENARIOS: dict[str, Callable[[dict[str, Any], str], Coroutine[Any, Any, dict[str, Any]]]] = {
    "sequential": sequential,
    "concurrent": concurrent,
    "batch": batch,
    "lag": lag_while_logging,
    "history": history,
    "search": search,
    "sqlite": physical,
    "asyncpg": physical_pg,
    "search_floor": search_floor,
    "history_floor": history_floor,
}


def main() -> None:
    global POSTGRES_URL
    scenario, out, opts = parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-ours-", dir=opts.get("tmp")) as workdir,
        pg_database(opts, f"ours_{scenario}") as POSTGRES_URL,
    ):
        result = asyncio.run(SCENARIOS[scenario](opts, workdir))
    emit(out, result)


if __name__ == "__main__":
    main()
