"""Metric reads: one key's points, with their times (:func:`metric_history`) or without
(:func:`metric_values`, a chart's read).

Like the other reads in ``_queries``, these take an :class:`~._executors.Executor` and
run off the event loop.
"""

from __future__ import annotations

from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import Any

from sqlalchemy import Float, bindparam, func, literal_column, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from ._codecs import from_db_time
from ._executors import Executor
from ._pg_times import FIRST, LAST, iso_utc
from ._records import MetricPoint
from ._schema import STATUS_OF, metric_points, static

__all__ = ["metric_history", "metric_values"]

# Read from the covering (experiment_id, key, step, timestamp, value) index in its order:
# no table lookups and no sort. Points equal in step and timestamp come by value.
METRIC_HISTORY = static(
    select(metric_points.c.step, metric_points.c.timestamp, metric_points.c.value)
    .where(
        metric_points.c.experiment_id == bindparam("b_id"),
        metric_points.c.key == bindparam("b_key"),
    )
    .order_by(metric_points.c.step, metric_points.c.timestamp)
)
# PostgreSQL over asyncpg (``Executor.aware_times``): the points as three arrays in one
# row, which asyncpg decodes in C (a quarter less client CPU than 10,000 rows, measured
# with process_time), zipped into MetricPoints in C: no Python per point. Their values
# are what a MetricPoint holds: the server restores NaN (stored as NULL) and clamps what
# asyncpg would not hand out as an aware time to Python's range (infinity, a naive
# datetime.max, reads as datetime.max in UTC, as from_db_time reads it; a year past 9999
# or BC no longer fails the read). The subquery reads the covering index in its order,
# with no sort; see _InOrder for how the arrays keep that order.
#
# The times come as ISO text in UTC ("2024-05-01 12:00:00.5Z"), which
# datetime.fromisoformat parses in C to the same aware UTC datetime, exact to the
# microsecond. asyncpg builds each timestamptz as epoch + timedelta(0, s, us), objects
# and arithmetic per point: 4.4 of the 5.1 ms of client CPU a 10,000-point history took
# over raw asyncpg, against 0.7 ms as text (process_time, medians of 100); the server's
# text output adds about 1.2 ms (EXPLAIN ANALYZE). Through the tracker: 93.6M -> 45.0M
# instructions per read (callgrind). float8 epoch seconds are exact to the microsecond
# only from 1698 to 2242 (2**33 s either side of 1970); int8 microseconds would cost a
# timedelta per point again.
_ORDER = (metric_points.c.step, metric_points.c.timestamp, metric_points.c.value)
_CLAMPED = func.least(func.greatest(metric_points.c.timestamp, FIRST), LAST)


_POINTS = (
    METRIC_HISTORY.with_only_columns(
        *_ORDER,
        _CLAMPED.label("t"),
        iso_utc(_CLAMPED).label("iso"),
        func.coalesce(metric_points.c.value, literal_column("'NaN'::float8", Float)).label("v"),
    )
    .order_by(None)
    .order_by(*_ORDER)
    .subquery("points")
)


class _InOrder(FunctionElement[Any]):
    """``array_agg`` of a column of :data:`_POINTS`, its elements in the subquery's order.

    PostgreSQL 16 and later: with ``ORDER BY`` in the aggregate, the one form the docs
    guarantee, which those versions fill from input already in that order with no sort
    of their own. Before 16, the aggregate takes the sorted subquery's rows as they come,
    which holds there because nothing can reorder them: the outer query has no join and
    ``array_agg`` no parallel form (added in 16). An ``ORDER BY`` per aggregate sorted
    the 10,000 points again for each array on PostgreSQL 15 (EXPLAIN ANALYZE: 2.5 ms
    server time without, 6.0 ms with).
    """

    type = NullType()  # arrays as the driver decodes them, with no result processor after
    inherit_cache = True


@compiles(_InOrder)
def _array_in_order(element: _InOrder, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    version = compiler.dialect.server_version_info
    if version is not None and version < (16,):
        return f"array_agg({column})"
    order = ", ".join(compiler.process(_POINTS.c[c.name], **kw) for c in _ORDER)
    return f"array_agg({column} ORDER BY {order})"


METRIC_HISTORY_ARRAYS = static(
    select(_InOrder(_POINTS.c.step), _InOrder(_POINTS.c.iso), _InOrder(_POINTS.c.v))
)
# The times as asyncpg decodes them, for a session whose DateStyle is not ISO.
METRIC_HISTORY_TIMES = static(
    METRIC_HISTORY_ARRAYS.with_only_columns(
        _InOrder(_POINTS.c.step), _InOrder(_POINTS.c.t), _InOrder(_POINTS.c.v)
    )
)
_NAN = float("nan")
_SECOND = itemgetter(1)
_new_tuple = tuple.__new__
_from_iso = datetime.fromisoformat


def metric_history(ex: Executor, experiment_id: str, key: str) -> list[MetricPoint] | None:
    """Every point of ``key``, by step then timestamp; None if the experiment is unknown.

    A NULL value is a NaN (see the schema).
    """
    params = {"b_id": experiment_id, "b_key": key}
    if ex.aware_times:
        iso = ex.iso_times  # else the session's DateStyle prints "12/31/2024 ...": no ISO
        query = METRIC_HISTORY_ARRAYS if iso else METRIC_HISTORY_TIMES
        steps, times, values = ex.query(query, params)[0]
        if not steps:
            return [] if ex.query(STATUS_OF, {"b_id": experiment_id}) else None
        if iso:
            times = list(map(_from_iso, times))
        return list(map(_new_tuple, repeat(MetricPoint), zip(steps, times, values, strict=True)))
    rows = ex.query(METRIC_HISTORY, params)
    if not rows and not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    new, time, nan = MetricPoint._make, from_db_time, _NAN
    return [new((step, time(t), nan if value is None else value)) for step, t, value in rows]


METRIC_VALUES = static(
    select(metric_points.c.step, metric_points.c.value)
    .where(
        metric_points.c.experiment_id == bindparam("b_id"),
        metric_points.c.key == bindparam("b_key"),
    )
    .order_by(metric_points.c.step, metric_points.c.timestamp)
)

METRIC_VALUES_ARRAYS = static(select(_InOrder(_POINTS.c.step), _InOrder(_POINTS.c.v)))


def metric_values(ex: Executor, experiment_id: str, key: str) -> list[tuple[int, float]] | None:
    """:func:`metric_history` without timestamps, as plain pairs: a chart's read, a few
    times quicker on long histories; None if the experiment is unknown."""
    params = {"b_id": experiment_id, "b_key": key}
    if ex.dialect == "postgresql":  # as in metric_history: two arrays, zipped in C
        steps, values = ex.query(METRIC_VALUES_ARRAYS, params)[0]
        if steps:
            return list(zip(steps, values, strict=True))
        return [] if ex.query(STATUS_OF, {"b_id": experiment_id}) else None
    rows = ex.query(METRIC_VALUES, params)
    if not rows and not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    if not rows or (type(rows[0]) is tuple and None not in map(_SECOND, rows)):
        return rows  # the driver's own tuples, with no NaN to restore: a copy costs more
    nan = _NAN
    return [(step, nan if value is None else value) for step, value in rows]
