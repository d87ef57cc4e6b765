"""The floor of ``get_metric_history`` on PostgreSQL (``bench_metrics.py``'s row 7e):
raw asyncpg reading one key's points two ways, timed in alternation on one connection,
statements prepared once (asyncpg's cache):

- ``rows``: the plain query, one row per point as asyncpg decodes it (its own
  ``datetime`` per timestamp), one ``MetricPoint`` per row;
- ``arrays``: the tracker's own statement (the points as three arrays in one row, times
  as ISO text), parsed and zipped into ``MetricPoint`` s as the tracker does.

What the tracker spends above the faster of the two is its connection from SQLAlchemy's
pool, the hop off the event loop and the check that the experiment exists.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from itertools import repeat
from typing import Any

import asyncpg
from _harness import Stopwatch
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from healthchain.tracking import MetricPoint
from healthchain.tracking._metric_reads import METRIC_HISTORY_ARRAYS

__all__ = ["arrays_sql", "by_arrays", "by_rows", "floor_history"]

ROWS = (
    "SELECT step, timestamp, value FROM metric_points "
    "WHERE experiment_id = $1 AND key = $2 ORDER BY step, timestamp, value"
)
_new_tuple = tuple.__new__
_from_iso = datetime.fromisoformat


def arrays_sql(server_version: tuple[int, int]) -> str:
    """The tracker's history statement as it compiles for a server of this version."""
    dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's gap
    dialect.server_version_info = server_version  # the aggregate's form depends on it
    return str(METRIC_HISTORY_ARRAYS.compile(dialect=dialect))


async def by_rows(conn: Any, experiment_id: str, key: str) -> list[MetricPoint]:
    """The points one row each, a ``MetricPoint`` of each row's values as decoded."""
    return [MetricPoint(*row) for row in await conn.fetch(ROWS, experiment_id, key)]


async def by_arrays(conn: Any, sql: str, experiment_id: str, key: str) -> list[MetricPoint]:
    """The points from the tracker's statement ``sql`` (:func:`arrays_sql`), as it reads them."""
    steps, times, values = await conn.fetchrow(sql, experiment_id, key)
    times = list(map(_from_iso, times))
    return list(map(_new_tuple, repeat(MetricPoint), zip(steps, times, values, strict=True)))


async def floor_history(
    url: str, experiment_id: str, key: str, reps: int, expected: int
) -> dict[str, Any]:
    """Seconds per history of each way (median of ``reps`` after a warm-up of each)."""
    conn = await asyncpg.connect(url)
    try:
        version = conn.get_server_version()
        sql = arrays_sql((version.major, version.minor))
        ways = {
            "rows": partial(by_rows, conn, experiment_id, key),
            "arrays": partial(by_arrays, conn, sql, experiment_id, key),
        }
        watches = {way: Stopwatch() for way in ways}
        for _ in range(reps + 1):
            for way, read in ways.items():
                with watches[way]:
                    points = await read()
                assert len(points) == expected, (way, len(points), expected)
    finally:
        await conn.close()
    return {way: watch.summary() for way, watch in watches.items()}
