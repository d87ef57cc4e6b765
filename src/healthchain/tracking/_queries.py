"""Reads: statements and filters; turning their rows into records is in ``_rows``.

The functions here take an :class:`~._executors.Executor` and run off the event loop (in
aiosqlite's thread for SQLite), so building thousands of records never stalls the loop.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ._codecs import from_db_time
from ._executors import Executor
from ._measures import add_measures
from ._records import Experiment, MetricPoint, RequestRecord, RequestStats, request_failed_sql
from ._rows import experiment_records, is_number, request_records
from ._schema import (
    STATUS_OF,
    experiment_tags,
    experiments,
    latest_metrics,
    metric_points,
    requests,
    static,
)
from ._schema import params as params_table
from ._search import OrderKey, ValidFilters

__all__ = [
    "LIST_QUERY_CACHE_SIZE",
    "get_experiment",
    "list_experiments",
    "list_requests",
    "metric_history",
    "request_stats",
]

LIST_QUERY_CACHE_SIZE = 64
"""Distinct list-query shapes kept built; a shape beyond it is rebuilt when used."""


class _JsonText(FunctionElement[str]):
    """A JSON column read as its text, decoded here on every backend.

    asyncpg would decode PostgreSQL's json itself, by recursion, so one row nested too
    deep would fail the whole read. SQLite returns the stored text as it is.
    """

    type = Text()
    inherit_cache = True


@compiles(_JsonText)
def _cast_to_text(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    column: ColumnElement[Any] = next(iter(element.clauses))
    return compiler.process(cast(column, Text), **kw)


@compiles(_JsonText, "sqlite")
def _as_stored(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)


# Experiment's fields, in order, are the columns read: the record's field list is the
# one place they are written (JSON columns come back as text, decoded in _rows). Fields
# kept in a table of their own (metrics, params) are read by _measures.
_COLUMNS = tuple(
    _JsonText(experiments.c[f.name])
    if isinstance(experiments.c[f.name].type, JSON)
    else experiments.c[f.name]
    for f in dataclasses.fields(Experiment)
    if "table" not in f.metadata
)
# The same columns with timestamps read as text: asyncpg fails a whole read on one
# PostgreSQL time outside Python's years 1-9999 (another writer's row), so such a read is
# retried with these, and _rows reads the text it cannot parse as unreadable.
_TIMES_AS_TEXT = tuple(
    cast(column, Text)
    if isinstance(column, Column) and isinstance(column.type, DateTime)
    else column
    for column in _COLUMNS
)


def _rows_of(ex: Executor, query: Select[Any], params: dict[str, Any]) -> list[Any]:
    try:
        return ex.query(query, params)
    except OverflowError:  # asyncpg: "date value out of range"
        return ex.query(query.with_only_columns(*_TIMES_AS_TEXT), params)


GET_EXPERIMENT = static(select(*_COLUMNS).where(experiments.c.id == bindparam("b_id")))
REQUEST_COUNTS = static(
    select(
        func.count(),
        func.coalesce(
            func.sum(
                case(
                    (request_failed_sql(requests.c.error, requests.c.status_code), 1),
                    else_=0,
                )
            ),
            0,
        ),
    ).where(requests.c.experiment_id == bindparam("b_id"))
)
REQUEST_LATENCIES = static(
    select(requests.c.latency_ms)
    .where(requests.c.experiment_id == bindparam("b_id"))
    .order_by(requests.c.latency_ms)
)


def get_experiment(ex: Executor, experiment_id: str) -> Experiment | None:
    """The experiment with its components, metrics and params, or None."""
    rows = _rows_of(ex, GET_EXPERIMENT, {"b_id": experiment_id})
    if not rows:
        return None
    records = experiment_records(rows)
    add_measures(ex, records)
    return records[0]


def build_list_query(
    filters: ValidFilters, limit: int | None, offset: int, order_by: tuple[OrderKey, ...] = ()
) -> tuple[Select[Any], dict[str, Any]]:
    """The filtered, ordered select and its parameters; every value is bound.

    Queries of one shape (how many tags and statuses, which operators, which order...)
    are built and compiled once: only the parameters differ from call to call.
    """
    query = _list_query(
        _Shape(
            len(filters.tags),
            len(filters.statuses),
            filters.name is not None,
            filters.project is not None,
            tuple(operator for _, operator, _ in filters.metrics),
            len(filters.params),
            tuple((key.field, key.descending) for key in order_by),
            limit is not None,
            offset > 0,
        )
    )
    params: dict[str, Any] = {}
    for i, (key, text) in enumerate(filters.tags.items()):
        params[f"k{i}"], params[f"v{i}"] = key, text
    for i, status in enumerate(filters.statuses):
        params[f"s{i}"] = status.value
    for i, (key, _, bound) in enumerate(filters.metrics):
        params[f"mk{i}"], params[f"mv{i}"] = key, bound
    for i, (key, text) in enumerate(filters.params.items()):
        params[f"pk{i}"], params[f"pv{i}"] = key, text
    for i, order_key in enumerate(order_by):
        if order_key.metric is not None:
            params[f"ok{i}"] = order_key.metric
    if filters.name is not None:
        params["name"] = filters.name
    if filters.project is not None:
        params["project"] = filters.project
    if limit is not None:
        params["limit"] = limit
    if offset > 0:
        params["offset"] = offset
    return query, params


class _Shape(NamedTuple):
    """What a list query's SQL depends on; the values themselves are bound."""

    tags: int
    statuses: int
    name: bool
    project: bool
    metric_operators: tuple[str, ...]
    params: int
    order: tuple[tuple[str, bool], ...]
    limit: bool
    offset: bool


_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@functools.lru_cache(maxsize=LIST_QUERY_CACHE_SIZE)
def _list_query(shape: _Shape) -> Select[Any]:
    source: Any = experiments
    # Newest first is id order (ids are time-ordered, see _ids). With a tag filter, order
    # by the first tag row's copy of the id: SQLite then reads the (key, value, id) index
    # backwards and never sorts.
    newest_first = experiments.c.id.desc()
    # Each filter is a join on its table's (key, value, experiment_id) index: it reads
    # only the matching index entries, never the JSON of every row.
    for i in range(shape.tags):
        tag = experiment_tags.alias(f"tag{i}")
        source = source.join(tag, _keyed(tag, f"k{i}", tag.c.value == bindparam(f"v{i}")))
        if i == 0:
            newest_first = tag.c.experiment_id.desc()
    for i, op in enumerate(shape.metric_operators):
        metric = latest_metrics.alias(f"metric{i}")
        bound = bindparam(f"mv{i}", type_=Float)
        # NULL (NaN) compares as unknown: a NaN metric matches no operator, != included
        source = source.join(metric, _keyed(metric, f"mk{i}", _COMPARE[op](metric.c.value, bound)))
    for i in range(shape.params):
        param = params_table.alias(f"param{i}")
        source = source.join(param, _keyed(param, f"pk{i}", param.c.value == bindparam(f"pv{i}")))
    order: list[Any] = []
    for i, (field, descending) in enumerate(shape.order):
        if field == "metric":
            metric = latest_metrics.alias(f"order{i}")
            source = source.outerjoin(metric, _keyed(metric, f"ok{i}", None))
            # numbers, then NaN (a NULL value), then no such metric, in both directions
            value = metric.c.value
            order += [
                value.is_(None),
                metric.c.key.is_(None),
                value.desc() if descending else value,
            ]
        elif field == "duration":  # running experiments have none: last both ways
            duration = _Duration(experiments.c.start_time, experiments.c.end_time)
            order += [experiments.c.end_time.is_(None), duration.desc() if descending else duration]
        else:
            column = experiments.c[field]
            order.append(column.desc() if descending else column)
    query = select(*_COLUMNS).select_from(source)
    if shape.statuses:
        query = query.where(
            experiments.c.status.in_([bindparam(f"s{i}") for i in range(shape.statuses)])
        )
    if shape.name:
        query = query.where(experiments.c.name == bindparam("name"))
    if shape.project:
        query = query.where(experiments.c.project == bindparam("project"))
    # ties keep the default order, so a page boundary never depends on the plan
    query = query.order_by(*order, newest_first)
    if shape.limit:
        query = query.limit(bindparam("limit", type_=BigInteger))
    if shape.offset:
        query = query.offset(bindparam("offset", type_=BigInteger))
    return query


def _keyed(rows: Any, key: str, condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    """Join ``rows`` (a tag, metric or param alias) on this experiment and a bound key."""
    on = and_(rows.c.experiment_id == experiments.c.id, rows.c.key == bindparam(key))
    return on if condition is None else and_(on, condition)


class _Duration(FunctionElement[Any]):
    """``end_time - start_time``, comparable: an interval on PostgreSQL, days on SQLite.

    SQLite's date functions read times to the millisecond, so durations closer than that
    tie there (and keep the default order).
    """

    inherit_cache = True


@compiles(_Duration)
def _interval(element: _Duration, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = element.clauses
    return f"({compiler.process(end, **kw)} - {compiler.process(start, **kw)})"


@compiles(_Duration, "sqlite")
def _days(element: _Duration, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = element.clauses
    return (
        f"(julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)}))"
    )


def list_experiments(ex: Executor, query: Select[Any], params: dict[str, Any]) -> list[Experiment]:
    """Run a query from :func:`build_list_query` with its parameters."""
    records = experiment_records(_rows_of(ex, query, params))
    add_measures(ex, records)
    return records


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def request_stats(ex: Executor, experiment_id: str) -> RequestStats | None:
    """Count, failures and latency p50/p95 of an experiment's requests; None if unknown."""
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    count, failures = ex.query(REQUEST_COUNTS, {"b_id": experiment_id})[0]
    if not count:
        return RequestStats(0, 0, None, None)
    latencies = [row[0] for row in ex.query(REQUEST_LATENCIES, {"b_id": experiment_id})]
    # Ordered by SQL: on SQLite another writer's NULL would come first and text last, so
    # two checks find any value that is not a number.
    if not (is_number(latencies[0]) and is_number(latencies[-1])):
        latencies = [value for value in latencies if is_number(value)]
        if not latencies:
            return RequestStats(int(count), int(failures), None, None)
    return RequestStats(
        int(count), int(failures), _percentile(latencies, 0.50), _percentile(latencies, 0.95)
    )


# Every request of one experiment, for views that need each latency (histograms, failures).
LIST_REQUESTS = static(
    select(
        requests.c.seq,
        requests.c.start_time,
        requests.c.latency_ms,
        requests.c.status_code,
        requests.c.error,
    )
    .where(requests.c.experiment_id == bindparam("b_id"))
    .order_by(requests.c.seq)
)


LIST_REQUESTS_TIMES_AS_TEXT = static(
    LIST_REQUESTS.with_only_columns(
        requests.c.seq,
        cast(requests.c.start_time, Text),
        requests.c.latency_ms,
        requests.c.status_code,
        requests.c.error,
    )
)


def list_requests(ex: Executor, experiment_id: str) -> list[RequestRecord] | None:
    """The experiment's requests in the order they were sent; None if it is unknown.

    How a row another writer left unreadable is read: see :func:`._rows.request_records`.
    """
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    params = {"b_id": experiment_id}
    try:
        rows = ex.query(LIST_REQUESTS, params)
    except OverflowError:  # as in _rows_of: a request time past Python's years
        rows = ex.query(LIST_REQUESTS_TIMES_AS_TEXT, params)
    return request_records(experiment_id, rows)


METRIC_HISTORY = static(
    select(metric_points.c.step, metric_points.c.timestamp, metric_points.c.value)
    .where(
        metric_points.c.experiment_id == bindparam("b_id"),
        metric_points.c.key == bindparam("b_key"),
    )
    .order_by(metric_points.c.step, metric_points.c.timestamp, metric_points.c.id)
)
_NAN = float("nan")


def metric_history(ex: Executor, experiment_id: str, key: str) -> list[MetricPoint] | None:
    """Every point of ``key``, by step then timestamp; None if the experiment is unknown.

    A NULL value is a NaN (see the schema).
    """
    rows = ex.query(METRIC_HISTORY, {"b_id": experiment_id, "b_key": key})
    if not rows and not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    new = MetricPoint._make
    return [new((step, from_db_time(t), _NAN if v is None else v)) for step, t, v in rows]
