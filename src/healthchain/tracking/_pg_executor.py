"""PostgreSQL over asyncpg: Core statements compiled once, run on the DB-API connection.

Going through ``Connection.execute`` costs each statement SQLAlchemy's cache-key walk,
parameter processing and result wrapping, and runs a counted update once per row: for
a group commit of 64 lifecycles that was 64 round trips for the ends alone. Here, as
:class:`~._executors.SqliteExecutor` does for sqlite3, each statement is compiled once
for the engine's own dialect (asyncpg's ``$1`` parameters), bound positionally, and run
on the PEP 249 connection SQLAlchemy hands out (``Connection.connection.dbapi_connection``,
public API): a statement for many rows is one ``executemany`` (asyncpg sends all rows
in one round trip), a counted update of many rows is one statement over ``unnest``ed
arrays (:data:`COUNTED_MANY`), and prepared statements are the adapter's own per
connection cache, keyed by SQL text that no longer changes between calls.

A whole batch of operations that say their statements (experiment starts and ends:
:meth:`._operations.Op.statements`) becomes one statement (:func:`batch_statement`),
which :mod:`._backends` awaits on the writer's asyncpg connection itself: one round trip
in autocommit, no greenlet and no adapter in between.

Errors are translated as ``Connection.execute`` would (``DBAPIError.instance``), so
callers see SQLAlchemy's exceptions and :func:`._transient.is_transient` judges them
alike; a lost connection is invalidated so the pool never hands it out again.

Only asyncpg's adapter is known to take ``$n`` positional parameters and bind lists as
arrays: any other driver keeps :class:`~._executors.CoreExecutor` (see :func:`usable`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ._executors import CompiledCache, picker
from ._schema import END, FILES_DIR, experiments

__all__ = ["COUNTED_MANY", "PgExecutor", "batch_statement", "usable"]


def usable(dialect: Dialect) -> bool:
    """Whether ``dialect`` is PostgreSQL over asyncpg (``$n`` parameters, arrays bound
    from lists), the one driver this executor is written for."""
    return (
        dialect.name == "postgresql"
        and dialect.driver == "asyncpg"
        and dialect.paramstyle == "numeric_dollar"
    )


class _Update:
    """A counted ``UPDATE .. FROM unnest(arrays)``: one statement for any number of rows,
    whose row count is exact (a row named twice is updated once, so the count falls
    short and the batch is replayed one by one, as with a statement per row)."""

    __slots__ = ("_assignments", "_columns", "_table", "_types", "_where", "pick", "sql", "width")

    def __init__(self, table: Any, sets: dict[str, str], where: str) -> None:
        self._table, self._where = table.name, where
        self._columns = ["id", *sets]
        self._types = [table.c[c].type.compile(dialect=_PG) for c in self._columns]
        self._assignments = ", ".join(f"{c} = v.{c}" for c in sets)
        self.pick = picker(["b_id", *sets.values()])
        """A row mapping to its values, one per array, in parameter order."""
        self.width = len(self._columns)
        self.sql = self.render()

    def render(self, first: int = 1, returning: str = "") -> str:
        """The statement with its arrays numbered from ``$first``."""
        arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(self._types, first))
        return (
            f"UPDATE {self._table} SET {self._assignments} "
            f"FROM unnest({arrays}) AS v({', '.join(self._columns)}) "
            f"WHERE {self._table}.id = v.id AND {self._where}{returning}"
        )

    def count_check(self, name: str, first: int) -> str:
        """True when the update ``name`` (a WITH query returning its rows) changed one
        row per id bound (array ``$first``)."""
        return f"(SELECT count(*) FROM {name}) = cardinality(${first}::{self._types[0]}[])"


_PG = PGDialect()  # type: ignore[no-untyped-call]  # for type names only

COUNTED_MANY: dict[Executable, _Update] = {
    END: _Update(
        experiments,
        {"status": "b_status", "end_time": "b_end", "error": "b_error"},
        "experiments.status = 'RUNNING'",
    ),
    FILES_DIR: _Update(experiments, {"files_dir": "b_files_dir"}, "TRUE"),
}
"""Counted updates hot enough for a statement of their own over many rows (and a place
in :func:`batch_statement`). Others run once per row."""


class _Statement:
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
        insert many rows from arrays (see :meth:`PgExecutor.write_all`)."""


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
        types.append(type_name or compiled.binds[name].type.compile(dialect=_PG))
    if len(types) != len(names):
        return None
    return sql[: found.start()], types, sql[found.end() :]


_Part = tuple[Executable, _Insert | _Update, Callable[[Any], tuple[Any, ...]], Sequence[Any]]
"""A statement, its one-statement form, how a row picks its values, and its rows."""

_FELL_SHORT = "healthchain: a counted update changed fewer rows than it was given"

WRITE_ALL_SHAPES = 32
"""Combinations of statements whose :meth:`PgExecutor.write_all` SQL is kept (the
tracker writes a handful); the oldest is dropped first."""


class PgExecutor:
    """Runs Core statements on asyncpg's DB-API adapter (see the module docstring)."""

    __slots__ = ("_cache", "_conn", "_dbapi", "_dialect", "_shapes", "_single")

    dialect = "postgresql"

    def __init__(self, conn: Connection, cache: CompiledCache[Any], shapes: dict[Any, str]) -> None:
        self._conn, self._cache, self._shapes = conn, cache, shapes
        self._dialect = conn.dialect
        self._dbapi: Any = conn.connection.dbapi_connection
        self._single: int | None = None
        """In autocommit for one write statement: how many have been run (else None)."""

    def _compiled(self, stmt: Executable) -> _Statement:
        return _compiled(self._cache, stmt, self._dialect)

    def begin(self, *, single: bool = False) -> None:
        # The adapter begins on the first statement (its own round trip); one statement
        # alone is atomic without it. commit and rollback leave autocommit off again.
        if single:
            self._dbapi.autocommit = True
            self._single = 0

    def commit(self) -> None:
        try:
            self._call(self._dbapi.commit)
        finally:
            self._dbapi.autocommit, self._single = False, None

    def rollback(self) -> None:
        try:
            self._call(self._dbapi.rollback)
        finally:
            self._dbapi.autocommit, self._single = False, None

    def _one_write(self, statements: int = 1) -> None:
        """In autocommit, a second write statement would not be atomic with the first."""
        if self._single is not None:
            self._single += statements
            if self._single > 1:
                raise RuntimeError(
                    "an operation declared single_statement wrote with more than one "
                    "statement; it must not claim single_statement"
                )

    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        self._one_write()
        if len(rows) > 1 and counted and stmt in COUNTED_MANY:
            update = COUNTED_MANY[stmt]
            arrays = list(map(list, zip(*map(update.pick, rows), strict=True)))
            return int(self._execute(update.sql, arrays).rowcount)
        entry = self._compiled(stmt)
        if len(rows) == 1:
            return int(self._execute(entry.sql, entry.pick(rows[0])).rowcount)
        if counted:
            self._one_write(len(rows) - 1)  # one statement per row
            return sum(self._execute(entry.sql, entry.pick(row)).rowcount for row in rows)
        cursor = self._dbapi.cursor()
        self._call(cursor.executemany, entry.sql, [entry.pick(row) for row in rows])
        return len(rows)

    def write_all(self, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
        """Every part in one statement: each INSERT's rows as arrays, one per column,
        ``unnest``ed, the INSERTs but the last in a ``WITH`` (one statement: atomic
        alone, and foreign keys are checked at its end, so an experiment's tags may come
        with it). A part whose INSERT has no such form runs on its own first."""
        ready: list[_Part] = []
        for stmt, rows in parts:
            if rows:
                entry = self._compiled(stmt)
                if entry.unnest is None:
                    self.run(stmt, rows)
                else:
                    ready.append((stmt, entry.unnest, entry.pick, rows))
        if ready:
            self._one_write()
            self._execute(*_sql_and_arrays(self._shapes, ready))

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        entry = self._compiled(stmt)
        bound = {**entry.bound, **params} if params else entry.bound
        cursor = self._execute(entry.sql, entry.pick(bound))
        rows: list[Any] = cursor.fetchall()
        processors = entry.processors
        if processors is None:
            processors = entry.processors = self._result_processors(stmt, cursor.description)
        if any(processors):
            return [
                tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
                for row in rows
            ]
        return rows

    def _result_processors(self, stmt: Executable, description: Any) -> list[Any]:
        """Each column's result processor, from its type and the type the server sent
        (asyncpg decodes nearly everything itself: most are None)."""
        columns = list(getattr(stmt, "selected_columns", ()))
        processors: list[Any] = [None] * len(description or ())
        if len(columns) == len(processors):
            for n, (column, described) in enumerate(zip(columns, description, strict=True)):
                impl = column.type.dialect_impl(self._dialect)
                processors[n] = impl.result_processor(self._dialect, described[1])
        return processors

    def _execute(self, sql: str, values: Sequence[Any]) -> Any:
        cursor = self._dbapi.cursor()
        self._call(cursor.execute, sql, values)
        return cursor

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self._dialect.loaded_dbapi.Error as exc:
            disconnected = self._dialect.is_disconnect(exc, self._dbapi, None)
            if disconnected:
                self._conn.invalidate(exc)  # never handed out again
            raise DBAPIError.instance(
                args[0] if args else None,
                None,
                exc,
                self._dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=self._dialect,
                connection_invalidated=disconnected,
            ) from exc


def _compiled(cache: CompiledCache[Any], stmt: Executable, dialect: Dialect) -> _Statement:
    entry: _Statement | None = cache.get(stmt)
    if entry is None:
        entry = _Statement(stmt, dialect)
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
    :meth:`PgExecutor.write_all` writes them and the counted updates of
    :data:`COUNTED_MANY`, each in a ``WITH``, the statement ending with a check that
    each update changed one row per row given, which fails the whole statement (nothing
    of it written) when one falls short. One update of one row alone is its plain
    statement, which writes nothing when its count (0) falls short. Nothing is run
    here: the caller runs it where it likes (:mod:`._backends`)."""
    ready: list[_Part] = []
    for stmt, rows in parts:
        if not rows:
            continue
        update = COUNTED_MANY.get(stmt)
        if update is not None:
            ready.append((stmt, update, update.pick, rows))
            continue
        entry = _compiled(cache, stmt, dialect)
        if entry.unnest is None:
            return None
        ready.append((stmt, entry.unnest, entry.pick, rows))
    if not ready:
        return None
    if len(ready) == 1 and len(ready[0][3]) == 1 and isinstance(ready[0][1], _Update):
        stmt, _, _, (row,) = ready[0]
        entry = _compiled(cache, stmt, dialect)
        return entry.sql, list(entry.pick(row)), 1
    return (*_sql_and_arrays(shapes, ready), None)


def _sql_and_arrays(shapes: dict[Any, str], ready: list[_Part]) -> tuple[str, list[list[Any]]]:
    """``ready``'s parts as one statement (its SQL kept per combination), and its arrays."""
    key = tuple(stmt for stmt, _, _, _ in ready)
    sql = shapes.get(key)
    if sql is None:
        sql = _one_statement_sql([form for _, form, _, _ in ready])
        while len(shapes) >= WRITE_ALL_SHAPES:
            del shapes[next(iter(shapes))]
        shapes[key] = sql
    arrays: list[list[Any]] = []
    for _, _, pick, rows in ready:
        arrays.extend(map(list, zip(*map(pick, rows), strict=True)))
    return sql, arrays


def _one_statement_sql(forms: list[_Insert | _Update]) -> str:
    """The parts as one statement, their arrays numbered on from one to the next. Only
    INSERTs: all but the last in WITH. With updates: every part in WITH, each update
    returning its rows, and a SELECT that fails unless each changed one row per id."""
    parts: list[str] = []
    checks: list[str] = []
    n = 1
    for i, form in enumerate(forms):
        if isinstance(form, _Update):
            parts.append(form.render(n, returning=" RETURNING 1"))
            checks.append(form.count_check(f"w{i}", n))
            n += form.width
            continue
        head, types, tail = form
        arrays = ", ".join(f"${n + j}::{t}[]" for j, t in enumerate(types))
        n += len(types)
        parts.append(f"{head} SELECT * FROM unnest({arrays}){tail}")
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
