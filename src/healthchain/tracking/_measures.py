"""Metrics and params of a page of experiments: one query per table, not one per record.

Each query asks for a chunk of ids with a fixed list of bound parameters, padded with
NULL (which matches no id): a handful of statement shapes, each compiled once. PostgreSQL
binds every id as one array instead, and asks both tables in one query (one round trip,
the ids sent once), whatever the page's size.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import CompoundSelect, Select
from sqlalchemy.sql.elements import BindParameter

from ._executors import Executor
from ._measure_rows import add_metrics, add_params
from ._records import Experiment
from ._schema import latest_metrics, params, static

__all__ = ["CHUNK", "add_measures"]

CHUNK = 256
"""Ids asked for in one query: far below every backend's limit on bound parameters."""


@functools.cache  # bounded: two tables times the powers of two up to CHUNK
def _by_ids(table: Table, size: int) -> Select[Any]:
    ids: list[BindParameter[str]] = [bindparam(f"i{n}") for n in range(size)]
    return static(
        select(table.c.experiment_id, table.c.key, table.c.value)
        .where(table.c.experiment_id.in_(ids))
        # the primary key's order: keys come out sorted, with no sort step
        .order_by(table.c.experiment_id, table.c.key)
    )


# One row of the table, if it has any: a table with none (params, for runs that never
# log any) is not asked about every chunk of ids. For one record (get_experiment), the
# lookup by its id costs what this one does: it is not asked first (:data:`_OF_ONE`).
_ANY_ROW = {table: static(select(table.c.key).limit(1)) for table in (latest_metrics, params)}
# One record's rows by its id alone: no padded list of ids to bind.
_OF_ONE = {
    table: static(
        select(table.c.experiment_id, table.c.key, table.c.value)
        .where(table.c.experiment_id == bindparam("b_id"))
        .order_by(table.c.key)
    )
    for table in (latest_metrics, params)
}
_ADD = ((latest_metrics, add_metrics), (params, add_params))
# PostgreSQL (whatever the page's size, one record too): the ids as one array, joined
# as a table: the planner looks each id up (or merges), where ``= ANY(array)`` compared
# every row of the table with every id (server CPU for 999 ids and 2,000 metrics: 1.82
# -> 1.14 ms; params, none stored: 0.54 -> 0.08).
_IDS = func.unnest(bindparam("ids", type_=ARRAY(String)))
# The same ids as one text, split on the server: asyncpg checks and encodes an array
# element by element (client CPU per query of 1,000 ids: 376 us as an array, 92 us as
# one text, medians of 300). U+001F (the unit separator) is the separator; an id holding
# it (another writer's) sends the ids as an array instead.
_SEP = "\x1f"
_IDS_TEXT = func.unnest(
    func.string_to_array(bindparam("ids", type_=Text), literal_column("E'\\x1f'", Text))
)


def _both(ids: Any) -> CompoundSelect[Any]:
    """Both tables' rows for ``ids`` (a set-returning function) in one statement: the
    params query alone was a round trip that sent the 999 ids of a long list again to
    find no rows (0.5 ms wall, median of 70, asyncpg on a local server). Metrics (0)
    come first, then params (1), each by key: so each record's dict holds its keys in
    order. Not by experiment too: records are found by id, and sorting 2,000 rows by
    id as well cost 0.7 ms of server time (EXPLAIN ANALYZE, 2.32 -> 1.66 ms, medians
    of 30)."""
    ids = ids.table_valued("id").render_derived()

    def rows_of(table: Table, which: str, metric: Any, param: Any) -> Select[Any]:
        return select(
            literal_column(which, Integer).label("which"),
            table.c.experiment_id,
            table.c.key,
            metric.label("metric"),
            param.label("param"),
        ).select_from(ids.join(table, table.c.experiment_id == ids.c.id))

    return static(
        union_all(
            rows_of(latest_metrics, "0", latest_metrics.c.value, null().cast(Text)),
            rows_of(params, "1", null().cast(Float), params.c.value),
        ).order_by("which", "key")
    )


_BOTH_BY_ID_ARRAY = _both(_IDS)
_BOTH_BY_ID_TEXT = _both(_IDS_TEXT)
_WHICH = itemgetter(0)
_METRIC = itemgetter(1, 2, 3)
_PARAM = itemgetter(1, 2, 4)


def add_measures(ex: Executor, records: Sequence[Experiment]) -> None:
    """Fill in ``metrics`` and ``params`` of records just read (their dicts are empty)."""
    if ex.dialect == "postgresql":
        if records:
            by_id = {record.id: record for record in records}
            joined = _SEP.join(by_id)
            # (a lone empty id would split into no id at all)
            if joined and joined.count(_SEP) == len(by_id) - 1:
                rows = ex.query(_BOTH_BY_ID_TEXT, {"ids": joined})
            else:
                rows = ex.query(_BOTH_BY_ID_ARRAY, {"ids": list(by_id)})
            first_param = bisect_left(rows, 1, key=_WHICH)
            add_metrics(by_id, list(map(_METRIC, rows[:first_param])))
            add_params(by_id, list(map(_PARAM, rows[first_param:])))
        return
    if len(records) == 1:
        one = {"b_id": records[0].id}
        by_one = {records[0].id: records[0]}
        for table, add in _ADD:
            add(by_one, ex.query(_OF_ONE[table], one))
        return
    by_id = {record.id: record for record in records}
    ids = list(by_id)
    for table, add in _ADD:
        if not ids or not ex.query(_ANY_ROW[table]):
            continue
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            size = 1 << (len(chunk) - 1).bit_length()  # the next power of two
            bound: dict[str, Any] = {f"i{n}": None for n in range(len(chunk), size)}
            bound.update({f"i{n}": id_ for n, id_ in enumerate(chunk)})
            add(by_id, ex.query(_by_ids(table, size), bound))
