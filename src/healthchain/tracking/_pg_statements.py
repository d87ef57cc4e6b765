"""PostgreSQL statements for many rows: compiled once, as one statement per batch.

Each Core statement is compiled once for the engine's dialect (asyncpg's ``$n``
parameters) and bound positionally (:class:`Statement`). An INSERT of many rows becomes
one INSERT from ``unnest``ed arrays, one per column; a counted update of many rows one
``UPDATE .. FROM unnest`` (:data:`._pg_checked.COUNTED_MANY`); rows that may be stored
already with the same value one checked ``INSERT .. ON CONFLICT DO NOTHING``
(:data:`._pg_checked.NEW_OR_SAME`, params); a start's tag and component rows drawn from its
experiments row's JSON (:data:`FROM_START`); metric points as texts the server parses
(:data:`PACKED`); and a whole batch of them one statement (:func:`batch_statement`,
:func:`sql_and_arrays`), with all but the last in a ``WITH``. One row each is bound as
plain values: asyncpg encodes one-element arrays at twice the client's cost per
statement. :mod:`._pg_executor` runs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ._executors import CompiledCache, picker
from ._pg_checked import COUNTED_MANY, NEW_OR_SAME, PG, Update
from ._pg_from_json import FromStart
from ._pg_packed import Packed
from ._schema import (
    COMPONENTS_OF_START,
    INSERT_EXPERIMENT,
    INSERT_METRIC_POINT,
    TAGS_OF_START,
    metric_points,
)

__all__ = [
    "FROM_START",
    "PACKED",
    "WRITE_ALL_SHAPES",
    "Part",
    "Statement",
    "batch_statement",
    "compiled",
    "sql_and_arrays",
]


class Statement:
    """One statement compiled for the connection's dialect, and how rows bind to it."""

    __slots__ = ("bound", "pick", "processors", "sql", "unnest")

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = cast(
            SQLCompiler,
            # for_executemany: no RETURNING of an INSERT's generated key, never read
            cast(ClauseElement, stmt).compile(
                dialect=dialect,
                for_executemany=True,
                compile_kwargs={"render_postcompile": True},
            ),
        )
        names = list(compiled.positiontup or [])
        processors: dict[int, Callable[[Any], Any]] = {}
        for n, name in enumerate(names):
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[n] = process
        self.sql: str = compiled.string
        self.pick = _processed(picker(names), processors)
        """A row mapping to its values in parameter order, processed (JSON serialised)."""
        self.bound: dict[str, Any] = compiled.params
        self.processors: list[Any] | None = None
        """Result processors, by column, once a result has said what the server sends."""
        self.unnest = _unnest_insert(compiled, names)
        """An INSERT's head and tail around its VALUES row and each parameter's type, to
        insert many rows from arrays (see :meth:`._pg_executor.PgExecutor.write_all`)."""


_Insert = tuple[str, list[str], str]
"""An INSERT's head before its VALUES row, each parameter's type, and its tail."""

# One row of parameters, each with the cast asyncpg's compiler gives it: "($1::VARCHAR, ..)".
_ROW = re.compile(r" VALUES \((\$\d+(?:::[A-Za-z ]+)?(?:, \$\d+(?:::[A-Za-z ]+)?)*)\)")


def _unnest_insert(compiled: SQLCompiler, names: list[str]) -> _Insert | None:
    """An INSERT (or upsert, text included) of one row of plain parameters, as its head,
    each parameter's type and its tail (``ON CONFLICT ..``); None for anything else."""
    sql = compiled.string
    found = _ROW.search(sql) if sql.startswith("INSERT INTO ") else None
    if found is None or not names:
        return None
    types: list[str] = []
    for n, (param, name) in enumerate(zip(found.group(1).split(", "), names, strict=False), 1):
        number, _, type_name = param.partition("::")
        if number != f"${n}":
            return None
        types.append(type_name or compiled.binds[name].type.compile(dialect=PG))
    if len(types) != len(names):
        return None
    return sql[: found.start()], types, sql[found.end() :]


def _positions(stmt: Executable, names: Sequence[str]) -> tuple[int, ...]:
    order = list(cast(ClauseElement, stmt).compile().params)
    return tuple(order.index(name) for name in names)


WRITER_CONSTANTS: dict[Executable, tuple[int, ...]] = {
    INSERT_EXPERIMENT: _positions(
        INSERT_EXPERIMENT, ("project", "status", "heartbeat_interval", "host", "pid")
    ),
}
"""Columns of an INSERT (by position) that one tracker writes alike in every row: in a
batch of many rows, each that does hold one value is bound as that value rather than
an array (see :func:`sql_and_arrays`). Declared, not found in whatever the rows hold,
so a statement keeps one or two shapes (each new one is a prepare on the server)."""

FROM_START: dict[Executable, FromStart] = {
    TAGS_OF_START: FromStart(
        INSERT_EXPERIMENT,
        _positions(INSERT_EXPERIMENT, ("id", "tags")),
        "id, tags",
        "INSERT INTO experiment_tags (experiment_id, key, value) "
        "SELECT e.id, j.key, j.value::text FROM {source}, json_each(e.tags) AS j",
    ),
    COMPONENTS_OF_START: FromStart(
        INSERT_EXPERIMENT,
        _positions(INSERT_EXPERIMENT, ("id", "components")),
        "id, components",
        # ORDER BY: the serial ids in the order the rows were given, as from arrays
        "INSERT INTO pipeline_components (experiment_id, name, type, stage, position) "
        "SELECT e.id, j.c ->> 0, j.c ->> 1, j.c ->> 2, j.n - 1 FROM {source}, "
        "json_array_elements(e.components) WITH ORDINALITY AS j(c, n) ORDER BY e.n, j.n",
    ),
}
"""Rows a batch of starts builds on the server from its experiments rows' JSON (see
:mod:`._pg_from_json`), in :func:`batch_statement` after that INSERT."""

PACKED: dict[Executable, Packed] = {INSERT_METRIC_POINT: Packed(metric_points)}
"""INSERTs whose many rows go as texts the server parses (:mod:`._pg_packed`)."""

_Form = _Insert | Update | FromStart | Packed
Part = tuple[Executable, _Form, Callable[[Any], tuple[Any, ...]], Sequence[Any]]
"""A statement, its one-statement form, how a row picks its values, and its rows."""

_FELL_SHORT = "healthchain: a checked write wrote fewer rows than it was given"

WRITE_ALL_SHAPES = 32
"""Combinations of statements whose :meth:`._pg_executor.PgExecutor.write_all` SQL is kept (the
tracker writes a handful); the oldest is dropped first."""


def compiled(cache: CompiledCache[Any], stmt: Executable, dialect: Dialect) -> Statement:
    """``stmt`` compiled for ``dialect``, from ``cache`` or into it."""
    entry: Statement | None = cache.get(stmt)
    if entry is None:
        entry = Statement(stmt, dialect)
        cache.put(stmt, entry)
    return entry


def batch_statement(
    cache: CompiledCache[Any],
    shapes: dict[Any, str],
    dialect: Dialect,
    parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]],
) -> tuple[str, list[Any], int | None] | None:
    """Every part as one statement, its parameters, and the row count its status must
    show (None: any); None when a part has no such form. INSERTs as
    :meth:`._pg_executor.PgExecutor.write_all` writes them and the counted updates of
    :data:`._pg_checked.COUNTED_MANY`, each in a ``WITH``, the statement ending with a check that
    each update changed one row per row given, which fails the whole statement (nothing
    of it written) when one falls short. One update of one row alone is its plain
    statement, which writes nothing when its count (0) falls short. Nothing is run
    here: the caller runs it where it likes (:mod:`._backends`)."""
    ready: list[Part] = []
    for stmt, rows in parts:
        if not rows:
            continue
        form = (
            COUNTED_MANY.get(stmt)
            or NEW_OR_SAME.get(stmt)
            or FROM_START.get(stmt)
            or PACKED.get(stmt)
        )
        if form is not None:
            ready.append((stmt, form, form.pick, rows))
            continue
        entry = compiled(cache, stmt, dialect)
        if entry.unnest is None:
            return None
        ready.append((stmt, entry.unnest, entry.pick, rows))
    if not ready:
        return None
    if len(ready) == 1 and len(ready[0][3]) == 1 and type(ready[0][1]) is Update:
        stmt, _, _, (row,) = ready[0]
        entry = compiled(cache, stmt, dialect)
        return entry.sql, list(entry.pick(row)), 1
    return (*sql_and_arrays(shapes, ready), None)


def sql_and_arrays(shapes: dict[Any, str], ready: list[Part]) -> tuple[str, list[Any]]:
    """``ready``'s parts as one statement (its SQL kept per combination), and its
    parameters: arrays, one per column, or plain values when each INSERT has one row. A
    column of :data:`WRITER_CONSTANTS` holding one value throughout a many-row INSERT is
    bound once as that value: asyncpg checks each array element against collections.abc
    ABCs (a Python-level ``__instancecheck__``), some 2,000 instructions an element."""
    one_row = all(len(rows) == 1 and not isinstance(form, Update) for _, form, _, rows in ready)
    params: list[Any]
    if one_row:
        key: tuple[Any, ...] = (one_row, *(stmt for stmt, _, _, _ in ready))
        params = [value for _, _, pick, (row,) in ready for value in pick(row)]
    else:
        params = []
        same: list[tuple[int, ...]] = []
        for stmt, form, pick, rows in ready:
            if isinstance(form, Packed):
                params += form.values(rows)
                same.append(_PACKED_SHAPE)  # not the same SQL as this INSERT from arrays
                continue
            part = list(zip(*map(pick, rows), strict=True))
            kept = _constant(part, WRITER_CONSTANTS.get(stmt, ()))
            same.append(kept)
            params += [values[0] if j in kept else list(values) for j, values in enumerate(part)]
        key = (one_row, *(stmt for stmt, _, _, _ in ready), *same)
    sql = shapes.get(key)
    if sql is None:
        forms = [(stmt, form) for stmt, form, _, _ in ready]
        sql = _one_statement_sql(forms, one_row=one_row, same=None if one_row else same)
        while len(shapes) >= WRITE_ALL_SHAPES:
            del shapes[next(iter(shapes))]
        shapes[key] = sql
    return sql, params


_PACKED_SHAPE = (-1,)


def _constant(columns: list[tuple[Any, ...]], candidates: tuple[int, ...]) -> tuple[int, ...]:
    """Which of ``candidates`` (column positions) hold one value in every row: equal,
    and for floats the very same object (0.0 equals -0.0)."""
    same = []
    for j in candidates:
        values = columns[j]
        first = values[0]
        if values.count(first) == len(values) and (
            first.__class__ is not float or all(v is first for v in values)
        ):
            same.append(j)
    return tuple(same)


def _one_statement_sql(
    forms: list[tuple[Executable, _Form]],
    *,
    one_row: bool = False,
    same: Sequence[tuple[int, ...]] | None = None,
) -> str:
    """The parts as one statement, their arrays (or, ``one_row``, each INSERT's values)
    numbered on from one to the next; an INSERT's columns in ``same`` bound as one value.
    Only INSERTs: all but the last in WITH. With updates: every part in WITH, each update
    returning its rows, and a SELECT that fails unless each changed one row per id."""
    parts: list[str] = []
    checks: list[str] = []
    bound: dict[Executable, tuple[int, list[str]]] = {}  # an INSERT's first $n, its types
    n = 1
    for i, (stmt, form) in enumerate(forms):
        if isinstance(form, FromStart):
            parts.append(form.render(*bound[form.source], one_row=one_row))
            continue
        if isinstance(form, Packed):
            parts.append(form.render(n, one_row=one_row))
            n += form.width(one_row=one_row)
            continue
        if isinstance(form, Update):
            parts.append(form.render(n, returning=" RETURNING 1"))
            checks.append(form.count_check(f"w{i}", n))
            n += form.width
            continue
        head, types, tail = form
        bound[stmt] = n, types
        if one_row:
            values = ", ".join(f"${n + j}::{t}" for j, t in enumerate(types))
            parts.append(f"{head} VALUES ({values}){tail}")
        elif same and same[i]:
            picked = [f"${n + j}::{t}" if j in same[i] else f"v.c{j}" for j, t in enumerate(types)]
            arrays = [f"${n + j}::{t}[]" for j, t in enumerate(types) if j not in same[i]]
            names = [f"c{j}" for j in range(len(types)) if j not in same[i]]
            parts.append(
                f"{head} SELECT {', '.join(picked)} FROM unnest({', '.join(arrays)}) "
                f"AS v({', '.join(names)}){tail}"
            )
        else:
            arrays_sql = ", ".join(f"${n + j}::{t}[]" for j, t in enumerate(types))
            parts.append(f"{head} SELECT * FROM unnest({arrays_sql}){tail}")
        n += len(types)
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts))
    if not checks:
        *first, last = parts
        if not first:
            return last
        return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last
    # A failed cast is how plain SQL raises an error, the reason in its message.
    return (
        f"WITH {ctes} SELECT CAST(CASE WHEN {' AND '.join(checks)} "
        f"THEN '0' ELSE '{_FELL_SHORT}' END AS integer)"
    )


def _processed(
    pick: Callable[[Any], tuple[Any, ...]], processors: dict[int, Callable[[Any], Any]]
) -> Callable[[Any], tuple[Any, ...]]:
    """``pick`` with each value that has a bind processor (JSON: serialised) processed."""
    if not processors:
        return pick
    items = tuple(processors.items())

    def pick_processed(row: Any) -> tuple[Any, ...]:
        values = list(pick(row))
        for n, process in items:
            values[n] = process(values[n])
        return tuple(values)

    return pick_processed
