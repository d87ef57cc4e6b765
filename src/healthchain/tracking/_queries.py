"""Reads: statements and what runs them; the list select is built in ``_listing``,
turning rows into records is in ``_rows`` (request rows: ``_request_rows``), and a
metric's history is read in ``_metric_reads``.

The functions here take an :class:`~._executors.Executor` and run off the event loop (in
aiosqlite's thread for SQLite), so building thousands of records never stalls the loop.
"""

from __future__ import annotations

import dataclasses
import functools
from itertools import repeat
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Text,
    bindparam,
    case,
    cast,
    func,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from ._executors import COMPILED_CACHE_SIZE, Executor
from ._measure_rows import add_metrics, add_params
from ._measures import add_measures
from ._pg_times import iso_utc, text_in_any_datestyle
from ._records import (
    Experiment,
    RequestRecord,
    RequestStats,
    nearest_rank,
    request_failed_sql,
)
from ._request_rows import request_records
from ._rows import experiment_records, is_number, iso_records
from ._schema import (
    STATUS_OF,
    experiments,
    latest_metrics,
    params,
    requests,
    static,
)

__all__ = [
    "RECORD_COLUMNS",
    "get_experiment",
    "list_experiments",
    "list_requests",
    "request_stats",
]


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
RECORD_COLUMNS = tuple(
    _JsonText(experiments.c[f.name])
    if isinstance(experiments.c[f.name].type, JSON)
    else experiments.c[f.name]
    for f in dataclasses.fields(Experiment)
    if "table" not in f.metadata
)
# The same columns with timestamps read as text: asyncpg fails a whole read on one
# PostgreSQL time outside Python's years 1-9999 (another writer's row), so such a read is
# retried with these, and _rows reads the text it cannot parse as unreadable (only that:
# the others' text parses in any DateStyle).
_TIMES_AS_TEXT = tuple(
    text_in_any_datestyle(column)
    if isinstance(column, Column) and isinstance(column.type, DateTime)
    else column
    for column in RECORD_COLUMNS
)


# PostgreSQL over asyncpg in DateStyle ISO (``Executor.iso_times``): the same columns
# with times as ISO text in UTC, which datetime.fromisoformat parses in C (see
# _metric_reads); asyncpg builds a timestamptz with Python arithmetic, three per row.
_TIMES_AS_ISO = tuple(
    iso_utc(column) if isinstance(column, Column) and isinstance(column.type, DateTime) else column
    for column in RECORD_COLUMNS
)


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _iso_form(query: Select[Any]) -> Select[Any]:
    """``query`` selecting :data:`_TIMES_AS_ISO`, built once per query (statements are
    compiled once per object)."""
    return query.with_only_columns(*_TIMES_AS_ISO)


def _rows_of(ex: Executor, query: Select[Any], params: dict[str, Any]) -> list[Any]:
    try:
        return ex.query(query, params)
    except OverflowError:  # asyncpg: "date value out of range"
        return ex.query(query.with_only_columns(*_TIMES_AS_TEXT), params)


GET_EXPERIMENT = static(select(*RECORD_COLUMNS).where(experiments.c.id == bindparam("b_id")))
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


_AS_IS = NullType()  # arrays as the driver decodes them, with no result processor after it


def _keys_and_values(table: Any) -> tuple[Any, Any]:
    """A record's keys and values in ``table``, as two arrays in key order (NULL: none)."""
    mine = table.c.experiment_id == experiments.c.id
    return tuple(  # type: ignore[return-value]
        type_coerce(
            select(func.array_agg(aggregate_order_by(column, table.c.key)))
            .where(mine)
            .scalar_subquery(),
            _AS_IS,
        )
        for column in (table.c.key, table.c.value)
    )


# PostgreSQL: the record with its metrics and params in one round trip, as arrays that
# asyncpg decodes itself (float8[] exactly; NULL for NaN, as stored).
GET_EXPERIMENT_WHOLE = static(
    select(*RECORD_COLUMNS, *_keys_and_values(latest_metrics), *_keys_and_values(params)).where(
        experiments.c.id == bindparam("b_id")
    )
)
_WIDTH = len(RECORD_COLUMNS)


def _whole(ex: Executor, experiment_id: str) -> list[Experiment] | None:
    """:data:`GET_EXPERIMENT_WHOLE`'s record, [] if none; None if a time in it is out of
    Python's range (the caller reads it the tolerant way)."""
    try:
        rows = ex.query(GET_EXPERIMENT_WHOLE, {"b_id": experiment_id})
    except OverflowError:  # asyncpg: "date value out of range"
        return None
    if not rows:
        return []
    row = tuple(rows[0])
    records = experiment_records([row[:_WIDTH]])
    by_id = {experiment_id: records[0]}
    metric_keys, metric_values, param_keys, param_values = row[_WIDTH:]
    if metric_keys:
        add_metrics(by_id, list(zip(repeat(experiment_id), metric_keys, metric_values)))
    if param_keys:
        add_params(by_id, list(zip(repeat(experiment_id), param_keys, param_values)))
    return records


def get_experiment(ex: Executor, experiment_id: str) -> Experiment | None:
    """The experiment with its components, metrics and params, or None."""
    if ex.dialect == "postgresql":
        whole = _whole(ex, experiment_id)
        if whole is not None:
            return whole[0] if whole else None
    rows = _rows_of(ex, GET_EXPERIMENT, {"b_id": experiment_id})
    if not rows:
        return None
    records = experiment_records(rows)
    add_measures(ex, records)
    return records[0]


def list_experiments(ex: Executor, query: Select[Any], params: dict[str, Any]) -> list[Experiment]:
    """Run a query from :func:`._listing.build_list_query` with its parameters."""
    records = iso_records(ex.query(_iso_form(query), params)) if ex.iso_times else None
    if records is None:
        records = experiment_records(_rows_of(ex, query, params))
    add_measures(ex, records)
    return records


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
        int(count), int(failures), nearest_rank(latencies, 0.50), nearest_rank(latencies, 0.95)
    )


# Every request of one experiment, for views that need each latency (histograms, failures).
LIST_REQUESTS = static(
    select(
        requests.c.seq,
        requests.c.start_time,
        requests.c.latency_ms,
        requests.c.status_code,
        requests.c.error,
        _JsonText(requests.c.scores),
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
        _JsonText(requests.c.scores),
    )
)


def list_requests(ex: Executor, experiment_id: str) -> list[RequestRecord] | None:
    """The experiment's requests in the order they were sent; None if it is unknown.

    How a row another writer left unreadable is read: see :func:`._request_rows.request_records`.
    """
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    params = {"b_id": experiment_id}
    try:
        rows = ex.query(LIST_REQUESTS, params)
    except OverflowError:  # as in _rows_of: a request time past Python's years
        rows = ex.query(LIST_REQUESTS_TIMES_AS_TEXT, params)
    return request_records(experiment_id, rows)
