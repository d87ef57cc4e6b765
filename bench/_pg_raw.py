"""The driver's own speed on PostgreSQL: plain ``asyncpg`` on the tracker's tables.

These are the reference figures of ``run.py``'s PostgreSQL table, how close the tracker
gets to its driver: one connection, statements prepared once (asyncpg's statement
cache), no ORM, no pool. Run as its own subprocess for the writes
(``_pg_raw.py writes OUT OPTS``: the tracker creates the schema in a fresh database,
then asyncpg writes lifecycles into its ``experiments`` table: an insert and an update
per lifecycle, autocommitted one after another; and 64 lifecycles per transaction, each
statement an ``executemany``). The reads (:func:`raw_reads`) run inside ``_ours.py
data`` on the database the tracker has just filled: the tag join's rows only, and one
experiment row by its key.

The first batched figure writes only the ``experiments`` row per lifecycle (no
``experiment_tags`` rows): the physical floor of two statements per lifecycle, not a
full copy of the tracker's work. The second (:mod:`_pg_raw_full`) writes every row the
tracker writes, 4 tag rows and 3 component rows beside each experiments row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

from _child import emit, parse_args
from _data import PROJECT, point_value, spec
from _harness import clock, median
from _pg_raw_full import FORMS, full_rows

__all__ = ["experiment_row", "raw_metric_points", "raw_reads", "rows_only"]

INSERT = (
    "INSERT INTO experiments (id, name, project, start_time, status, tags, pipeline_config, "
    "components, heartbeat_at, heartbeat_interval, host, pid) "
    "VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $7, $4, 10.0, $8, $9)"
)
UPDATE = "UPDATE experiments SET end_time = $2, status = 'COMPLETED' WHERE id = $1"
TAG_JOIN = (
    "SELECT e.* FROM experiment_tags AS t JOIN experiments AS e ON e.id = t.experiment_id "
    "WHERE t.key = $1 AND t.value = $2"
)
BY_KEY = "SELECT * FROM experiments WHERE id = $1"
CHILDREN = (
    "SELECT (SELECT count(*) FROM experiment_tags), (SELECT count(*) FROM pipeline_components)"
)
BATCH = 64


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def experiment_row(i: int) -> tuple[Any, ...]:
    s = spec(i)
    components = [[c["name"], c["type"], c["stage"]] for c in s["components"]]
    return (
        str(uuid.uuid4()),
        s["name"],
        PROJECT,
        dt.datetime.now(dt.UTC),
        json.dumps(s["tags"]),
        json.dumps(s["pipeline_config"]),
        json.dumps(components),
        socket.gethostname(),
        os.getpid(),
    )


async def raw_reads(url: str, picks: list[str], reps: int, expected: int) -> dict[str, Any]:
    """The tag join's rows (``environment`` = production) and one row by key, timed like
    the tracker's reads just before on the same database: a warm-up, then medians."""
    import asyncpg

    conn = await asyncpg.connect(_pg(url))
    try:
        times = []
        for _ in range(reps + 1):
            t0 = clock()
            rows = await conn.fetch(TAG_JOIN, "environment", json.dumps("production"))
            times.append(clock() - t0)
            assert len(rows) == expected, (len(rows), expected)
        for experiment_id in picks[:20]:
            await conn.fetchrow(BY_KEY, experiment_id)
        t0 = clock()
        for experiment_id in picks[20:]:
            row = await conn.fetchrow(BY_KEY, experiment_id)
        by_key_us = (clock() - t0) / max(1, len(picks) - 20) * 1e6
        assert row is not None and row["id"] == picks[-1]
    finally:
        await conn.close()
    return {"raw_tag_join_s": median(times[1:]), "raw_tag_join_times": times[1:],
            "raw_by_key_us": by_key_us}  # fmt: skip


async def rows_only(conn: Any, counter: Iterator[int], batches: int) -> float:
    """Lifecycles per second, 64 per transaction, each statement an ``executemany``:
    the ``experiments`` rows only."""
    t0 = clock()
    for _ in range(batches):
        rows = [experiment_row(next(counter)) for _ in range(BATCH)]
        async with conn.transaction():
            await conn.executemany(INSERT, rows)
            now = dt.datetime.now(dt.UTC)
            await conn.executemany(UPDATE, [(r[0], now) for r in rows])
    return batches * BATCH / (clock() - t0)


async def raw_writes(opts: dict[str, Any]) -> dict[str, Any]:
    """Lifecycles per second through asyncpg: sequential autocommit, and 64 per transaction."""
    import asyncpg
    from _ours import open_tracker

    url = opts["url"]
    async with open_tracker(url):
        pass  # the schema, as the tracker makes it
    n, blocks, batches = opts["n"], opts["blocks"], opts["batches"]
    conn = await asyncpg.connect(_pg(url))
    counter = iter(range(10**9))

    async def one_by_one(count: int) -> float:
        t0 = clock()
        for _ in range(count):
            row = experiment_row(next(counter))
            await conn.execute(INSERT, *row)
            await conn.execute(UPDATE, row[0], dt.datetime.now(dt.UTC))
        return count / (clock() - t0)

    full: dict[str, list[float]] = {form: [] for form in FORMS}
    try:
        await one_by_one(50)
        seq = [await one_by_one(n) for _ in range(blocks)]
        await rows_only(conn, counter, 4)
        batched = [await rows_only(conn, counter, batches) for _ in range(blocks)]
        for form in FORMS:
            await full_rows(conn, counter, experiment_row, form, 4)
        for _ in range(blocks):  # blocks of the two forms alternating
            for form, rates in full.items():
                rates.append(await full_rows(conn, counter, experiment_row, form, batches))
        written = await conn.fetchval("SELECT count(*) FROM experiments WHERE status = 'COMPLETED'")
        children = tuple(await conn.fetchrow(CHILDREN))
    finally:
        await conn.close()
    assert written == next(counter), (written, "lifecycles written")
    with_rows = BATCH * len(FORMS) * (4 + blocks * batches)
    assert children == (4 * with_rows, 3 * with_rows), (children, "tag, component rows")
    full_rate = {form: median(rates) for form, rates in full.items()}
    fastest = max(full_rate, key=full_rate.__getitem__)
    return {
        "raw_seq_rates": seq,
        "raw_seq_rate": median(seq),
        "raw_batch_rates": batched,
        "raw_batch_rate": median(batched),
        "raw_full_rates": full,
        "raw_full_by_form": full_rate,
        "raw_full_form": fastest,
        "raw_full_rate": full_rate[fastest],
    }


POINT = (
    "INSERT INTO metric_points (experiment_id, key, step, timestamp, value) "
    "VALUES ($1, $2, $3, $4, $5)"
)
# One awaited point as the tracker writes it: the point and its key's latest row, in one
# statement (atomic alone, so autocommitted: one round trip, one commit).
POINT_AND_LATEST = (
    f"WITH point AS ({POINT}) "
    "INSERT INTO latest_metrics (experiment_id, key, step, timestamp, value) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (experiment_id, key) DO UPDATE "
    "SET step = excluded.step, timestamp = excluded.timestamp, value = excluded.value "
    "WHERE excluded.step > latest_metrics.step OR (excluded.step = latest_metrics.step "
    "AND excluded.timestamp >= latest_metrics.timestamp)"
)


async def raw_metric_points(url: str, experiment_id: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Points per second into the tracker's ``metric_points`` table, blocks of three ways
    alternating (``bench_metrics.py``'s PostgreSQL references): 1,000 rows per
    transaction, one ``executemany`` each; the same by binary COPY
    (``copy_records_to_table``); and ``opts["calls"]`` points awaited one after another,
    each with its latest row in one autocommitted statement (:data:`POINT_AND_LATEST`)."""
    import asyncpg

    sql = POINT
    conn = await asyncpg.connect(_pg(url))
    step = 0

    columns = ("experiment_id", "key", "step", "timestamp", "value")

    async def insert(batches: int, copy: bool = False) -> float:
        nonlocal step
        t0 = clock()
        for _ in range(batches):
            now = dt.datetime.now(dt.UTC)
            rows = [
                (experiment_id, "loss", k, now, point_value(k)) for k in range(step, step + 1000)
            ]
            step += 1000
            async with conn.transaction():
                if copy:
                    await conn.copy_records_to_table("metric_points", records=rows, columns=columns)
                else:
                    await conn.executemany(sql, rows)
        return batches * 1000 / (clock() - t0)

    async def one_by_one(calls: int) -> float:
        nonlocal step
        t0 = clock()
        for k in range(step, step + calls):
            await conn.execute(
                POINT_AND_LATEST, experiment_id, "loss", k, dt.datetime.now(dt.UTC), point_value(k)
            )
        step += calls
        return calls / (clock() - t0)

    try:
        await insert(2)
        await insert(2, copy=True)
        await one_by_one(100)
        rates, copy_rates, seq_rates = [], [], []
        for _ in range(opts["blocks"]):
            rates.append(await insert(opts["batches"]))
            copy_rates.append(await insert(opts["batches"], copy=True))
            seq_rates.append(await one_by_one(opts["calls"]))
        written = await conn.fetchval("SELECT count(*) FROM metric_points")
        latest = await conn.fetchval("SELECT step FROM latest_metrics")
    finally:
        await conn.close()
    assert written == step and latest == step - 1, (written, latest, step)
    return {
        "rates": rates,
        "rate": median(rates),
        "copy_rates": copy_rates,
        "copy_rate": median(copy_rates),
        "seq_rates": seq_rates,
        "seq_rate": median(seq_rates),
    }


def main() -> None:
    from _pg import fresh_database

    scenario, out, opts = parse_args()
    if scenario != "writes":
        raise SystemExit(f"unknown scenario {scenario!r}: the one scenario is 'writes'")
    with fresh_database(opts["postgres"], opts["prefix"], "raw_writes") as url:
        result = asyncio.run(raw_writes({**opts, "url": url}))
    emit(out, result)


if __name__ == "__main__":
    main()
