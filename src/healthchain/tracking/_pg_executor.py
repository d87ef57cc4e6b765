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

__all__ = ["COUNTED_MANY", "PgExecutor", "usable"]


def usable(dialect: Dialect) -> bool:
    """Whether ``dialect`` is PostgreSQL over asyncpg (``$n`` parameters, arrays bound
    from lists), the one driver this executor is written for."""
    return (
        dialect.name == "postgresql"
        and dialect.driver == "asyncpg"
        and dialect.paramstyle == "numeric_dollar"
    )


def _unnest_update(stmt_table: Any, sets: dict[str, str], where: str) -> tuple[str, list[str]]:
    """``UPDATE .. FROM unnest(arrays)``: one statement for any number of rows, whose
    row count is exact (a row named twice is updated once, so the count falls short
    and the batch is replayed one by one, as with a statement per row)."""
    names = ["b_id", *sets.values()]
    columns = ["id", *sets]
    types = [stmt_table.c[c].type.compile(dialect=_PG) for c in columns]
    arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, 1))
    assignments = ", ".join(f"{c} = v.{c}" for c in sets)
    sql = (
        f"UPDATE {stmt_table.name} SET {assignments} "
        f"FROM unnest({arrays}) AS v({', '.join(columns)}) "
        f"WHERE {stmt_table.name}.id = v.id AND {where}"
    )
    return sql, names


_PG = PGDialect()  # type: ignore[no-untyped-call]  # for type names only

COUNTED_MANY: dict[Executable, tuple[str, list[str]]] = {
    END: _unnest_update(
        experiments,
        {"status": "b_status", "end_time": "b_end", "error": "b_error"},
        "experiments.status = 'RUNNING'",
    ),
    FILES_DIR: _unnest_update(experiments, {"files_dir": "b_files_dir"}, "TRUE"),
}
"""Counted updates hot enough for a statement of their own over many rows: the SQL
and the row keys bound, each as one array, in order. Others run once per row."""


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


# One row of parameters, each with the cast asyncpg's compiler gives it: "($1::VARCHAR, ..)".
_ROW = re.compile(r" VALUES \((\$\d+(?:::[A-Za-z ]+)?(?:, \$\d+(?:::[A-Za-z ]+)?)*)\)")


def _unnest_insert(compiled: SQLCompiler, names: list[str]) -> tuple[str, list[str], str] | None:
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


WRITE_ALL_SHAPES = 32
"""Combinations of statements whose :meth:`PgExecutor.write_all` SQL is kept (the
tracker writes a handful); the oldest is dropped first."""


class PgExecutor:
    """Runs Core statements on asyncpg's DB-API adapter (see the module docstring)."""

    __slots__ = ("_cache", "_conn", "_dbapi", "_dialect", "_shapes", "_single")

    dialect = "postgresql"
    aware_times = True

    def __init__(self, conn: Connection, cache: CompiledCache[Any], shapes: dict[Any, str]) -> None:
        self._conn, self._cache, self._shapes = conn, cache, shapes
        self._dialect = conn.dialect
        self._dbapi: Any = conn.connection.dbapi_connection
        self._single: int | None = None
        """In autocommit for one write statement: how many have been run (else None)."""

    def _compiled(self, stmt: Executable) -> _Statement:
        entry: _Statement | None = self._cache.get(stmt)
        if entry is None:
            entry = _Statement(stmt, self._dialect)
            self._cache.put(stmt, entry)
        return entry

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
            sql, names = COUNTED_MANY[stmt]
            arrays = tuple([row[name] for row in rows] for name in names)
            return int(self._execute(sql, arrays).rowcount)
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
        ready: list[tuple[Executable, _Statement, Sequence[dict[str, Any]]]] = []
        for stmt, rows in parts:
            if not rows:
                continue
            entry = self._compiled(stmt)
            if entry.unnest is None:
                self.run(stmt, rows)
            else:
                ready.append((stmt, entry, rows))
        if not ready:
            return
        self._one_write()
        key = tuple(stmt for stmt, _, _ in ready)
        sql = self._shapes.get(key)
        if sql is None:
            sql = _write_all_sql([entry.unnest for _, entry, _ in ready if entry.unnest])
            while len(self._shapes) >= WRITE_ALL_SHAPES:
                del self._shapes[next(iter(self._shapes))]
            self._shapes[key] = sql
        arrays: list[list[Any]] = []
        for _, entry, rows in ready:
            assert entry.unnest is not None
            width = len(entry.unnest[1])
            columns = list(map(list, zip(*map(entry.pick, rows), strict=True)))
            arrays.extend(columns or [[] for _ in range(width)])
        self._execute(sql, arrays)

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


def _write_all_sql(inserts: list[tuple[str, list[str], str]]) -> str:
    """INSERTs from arrays, numbered on from one to the next; all but the last in WITH."""
    parts: list[str] = []
    n = 0
    for head, types, tail in inserts:
        arrays = ", ".join(f"${n + i}::{t}[]" for i, t in enumerate(types, 1))
        n += len(types)
        parts.append(f"{head} SELECT * FROM unnest({arrays}){tail}")
    *first, last = parts
    if not first:
        return last
    return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last


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
