"""Reads: statements, filters, and turning rows into records.

The functions here take an :class:`~._executors.Executor` and run off the event loop (in
aiosqlite's thread for SQLite), so building thousands of records never stalls the loop.
Turning rows into records is most of the cost of a large list: keep it lean.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, BigInteger, Text, and_, bindparam, case, cast, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ._codecs import from_db_time
from ._executors import Executor
from ._records import (
    Component,
    Experiment,
    ExperimentStatus,
    RequestRecord,
    RequestStats,
    request_failed_sql,
)
from ._schema import STATUS_OF, experiment_tags, experiments, requests, static
from ._validation import MAX_JSON_DEPTH, ValidFilters, check_depth

__all__ = [
    "LIST_QUERY_CACHE_SIZE",
    "get_experiment",
    "list_experiments",
    "list_requests",
    "request_stats",
]

logger = logging.getLogger("healthchain.tracking")

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
# one place they are written (JSON columns come back as text, decoded here).
_COLUMNS = tuple(
    _JsonText(experiments.c[f.name])
    if isinstance(experiments.c[f.name].type, JSON)
    else experiments.c[f.name]
    for f in dataclasses.fields(Experiment)
)
_STATUS = {s.value: s for s in ExperimentStatus}
# The stdlib decoder's C scanner (what ``json.loads`` ends in), without the whitespace
# regex and end check around it (JSON another writer indented falls back to json.loads).
# Measured with timeit on a 2-core Linux box (median of 7, CPython 3.11, short tag and
# config values): 0.30 µs per value, against 0.39 µs for the public ``raw_decode`` and
# 1.0 µs for ``json.loads``; at three values a row, ~0.3 s per million rows listed.
# ``json.JSONDecoder.scan_once`` has been there since Python 2.6.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

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


_READ_DEPTH = MAX_JSON_DEPTH + 1


class _TooDeep(Exception):
    """Stored JSON nested deeper than the tracker writes (another writer's row)."""


def _json(value: Any) -> Any:
    if value is None or value.__class__ is not str:
        return value
    try:
        decoded = _scan(value, 0)[0]
    except StopIteration:  # written by someone else, with leading whitespace
        decoded = json.loads(value)
    # JSON nested N deep is at least 2N characters with N brackets: the cheap tests
    # spare the walk to nearly every row. Deeper than the tracker writes (a tags object
    # around values of the maximum depth), it could break whatever renders it (encoders
    # recurse too), so it is not handed out.
    if len(value) > 2 * _READ_DEPTH and value.count("[") + value.count("{") > _READ_DEPTH:
        check_depth(decoded, "stored JSON", _TooDeep, _READ_DEPTH)
    return decoded


def _components(value: Any) -> tuple[Component, ...]:
    parts = _json(value)  # PostgreSQL's json column holds None as JSON 'null'
    if parts is None:
        return ()
    return tuple(
        Component(name, kind, stage, position) for position, (name, kind, stage) in enumerate(parts)
    )


def _records(rows: Iterable[Any]) -> list[Experiment]:
    """Rows of ``_COLUMNS`` as records: the hot loop of every list."""
    # Runs of one project usually share their pipeline: its components (immutable
    # tuples) are built once per distinct value and shared between records.
    pipelines: dict[Any, tuple[Component, ...]] = {None: ()}
    json, time, status_of = _json, from_db_time, _STATUS
    out: list[Experiment] = []
    append = out.append
    # unpacked in _COLUMNS' order, which is Experiment's: one name per field
    for id_, name, project, start, end, status, tags, config, parts, error, host, pid, beat in rows:
        try:
            key = parts if parts is None or isinstance(parts, str) else repr(parts)
            components = pipelines.get(key)
            if components is None:
                components = pipelines[key] = _components(parts)
            tags, config = json(tags), json(config)
        except _UNREADABLE:  # another writer's row: list it all the same
            tags, config, components = _unreadable(id_, tags, config, parts)
        append(
            Experiment(
                id_,
                name,
                project,
                time(start),  # type: ignore[arg-type]
                time(end),
                status_of[status],
                tags,
                config,
                components,
                error,
                host,
                pid,
                time(beat),
            )
        )
    return out


# What another writer's JSON can raise: too deep to decode or to render, not JSON, or
# components that are not [name, type, stage] triples.
_UNREADABLE = (RecursionError, _TooDeep, ValueError, TypeError)


def _unreadable(experiment_id: str, tags: Any, config: Any, parts: Any) -> tuple[Any, Any, Any]:
    """Decode what can be; a column that cannot be read is empty, with a warning."""
    out: list[Any] = []
    for column, value, empty, decode in (
        ("tags", tags, {}, _json),
        ("pipeline_config", config, None, _json),
        ("components", parts, (), _components),
    ):
        try:
            out.append(decode(value))
        except _UNREADABLE as exc:
            logger.warning(
                "experiment %s: its %s JSON cannot be read (%s); shown as empty",
                experiment_id,
                column,
                "nested too deep" if isinstance(exc, RecursionError | _TooDeep) else exc,
            )
            out.append(empty)
    return out[0], out[1], out[2]


def get_experiment(ex: Executor, experiment_id: str) -> Experiment | None:
    """The experiment with its components, or None."""
    rows = ex.query(GET_EXPERIMENT, {"b_id": experiment_id})
    return _records(rows)[0] if rows else None


def build_list_query(
    filters: ValidFilters, limit: int | None, offset: int
) -> tuple[Select[Any], dict[str, Any]]:
    """The filtered, newest-first select and its parameters; every value is bound.

    Queries of one shape (how many tags and statuses, which other filters) are built and
    compiled once: only the parameters differ from call to call.
    """
    query = _list_query(
        len(filters.tags),
        len(filters.statuses),
        filters.name is not None,
        filters.project is not None,
        limit is not None,
        offset > 0,
    )
    params: dict[str, Any] = {}
    for i, (key, text) in enumerate(filters.tags.items()):
        params[f"k{i}"], params[f"v{i}"] = key, text
    for i, status in enumerate(filters.statuses):
        params[f"s{i}"] = status.value
    if filters.name is not None:
        params["name"] = filters.name
    if filters.project is not None:
        params["project"] = filters.project
    if limit is not None:
        params["limit"] = limit
    if offset > 0:
        params["offset"] = offset
    return query, params


@functools.lru_cache(maxsize=LIST_QUERY_CACHE_SIZE)
def _list_query(
    tags: int, statuses: int, name: bool, project: bool, limit: bool, offset: bool
) -> Select[Any]:
    source: Any = experiments
    # Newest first is id order (ids are time-ordered, see _ids). With a tag filter, order
    # by the first tag row's copy of the id: SQLite then reads the (key, value, id) index
    # backwards and never sorts.
    newest_first = experiments.c.id.desc()
    for i in range(tags):
        tag = experiment_tags.alias(f"tag{i}")
        # Joined on the (key, value, experiment_id) index: a tag filter reads only the
        # matching index entries, never the JSON of every row.
        source = source.join(
            tag,
            and_(
                tag.c.experiment_id == experiments.c.id,
                tag.c.key == bindparam(f"k{i}"),
                tag.c.value == bindparam(f"v{i}"),
            ),
        )
        if i == 0:
            newest_first = tag.c.experiment_id.desc()
    query = select(*_COLUMNS).select_from(source)
    if statuses:
        query = query.where(experiments.c.status.in_([bindparam(f"s{i}") for i in range(statuses)]))
    if name:
        query = query.where(experiments.c.name == bindparam("name"))
    if project:
        query = query.where(experiments.c.project == bindparam("project"))
    query = query.order_by(newest_first)
    if limit:
        query = query.limit(bindparam("limit", type_=BigInteger))
    if offset:
        query = query.offset(bindparam("offset", type_=BigInteger))
    return query


def list_experiments(ex: Executor, query: Select[Any], params: dict[str, Any]) -> list[Experiment]:
    """Run a query from :func:`build_list_query` with its parameters."""
    return _records(ex.query(query, params))


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


def list_requests(ex: Executor, experiment_id: str) -> list[RequestRecord] | None:
    """The experiment's requests in the order they were sent; None if it is unknown."""
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    return [
        RequestRecord(seq, from_db_time(start), latency, code, error)  # type: ignore[arg-type]
        for seq, start, latency, code, error in ex.query(LIST_REQUESTS, {"b_id": experiment_id})
    ]
