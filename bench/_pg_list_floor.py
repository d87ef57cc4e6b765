"""The floor of a list on PostgreSQL (``bench_metrics.py``'s row 7c, ``run.py``'s tag
filter): raw asyncpg running the SQL ``list_experiments`` runs (the page, then its
metrics and params in one query), making one ``Experiment`` per row from the values as
they come, decoding nothing: times stay ISO text, JSON stays text, the status a string;
each metric and param row goes into its record's dict as it is. What the tracker spends
above this is what reading the values properly costs (times, JSON, statuses, NaN,
unreadable rows), plus SQLAlchemy's connection and the hop off the event loop. One
connection, statements prepared once (asyncpg's cache).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from _harness import Stopwatch
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from healthchain.tracking import Experiment
from healthchain.tracking._listing import build_list_query
from healthchain.tracking._measures import _BOTH_BY_ID_TEXT, _SEP
from healthchain.tracking._queries import _iso_form
from healthchain.tracking._search import validate_filters, validate_order_by

__all__ = ["floor_list"]


def list_sql(filters: dict[str, Any], order_by: str | None) -> tuple[str, list[Any], str]:
    """The page's SQL and arguments, and its measures' SQL, as the tracker compiles them."""
    dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's gap
    query, params = build_list_query(
        validate_filters(filters), None, 0, validate_order_by(order_by)
    )
    page = _iso_form(query).compile(dialect=dialect)
    args = [params[name] for name in page.positiontup or ()]
    return str(page), args, str(_BOTH_BY_ID_TEXT.compile(dialect=dialect))


async def floor_list(
    url: str, filters: dict[str, Any], order_by: str | None, reps: int, expected: int
) -> dict[str, Any]:
    """Seconds per list (median of ``reps`` after a warm-up), as ``search`` reports them;
    ``order_by`` None: the tracker's default order, newest first."""
    page_sql, args, measures_sql = list_sql(filters, order_by)
    conn = await asyncpg.connect(url)
    try:
        watch = Stopwatch()
        for _ in range(reps + 1):
            with watch:
                records = [Experiment(*row) for row in await conn.fetch(page_sql, *args)]
                by_id = {record.id: record for record in records}
                for which, id_, key, metric, param in await conn.fetch(
                    measures_sql, _SEP.join(by_id)
                ):
                    if which:
                        by_id[id_].params[key] = param
                    else:
                        by_id[id_].metrics[key] = metric
            assert len(records) == expected, (len(records), expected)
    finally:
        await conn.close()
    first = [record.name for record in records[:20]]
    return {**watch.summary(), "matches": len(records), "first": first}
