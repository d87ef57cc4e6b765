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

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ._executors import CompiledCache, picker
from ._schema import END, experiments

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
}
"""Counted updates hot enough for a statement of their own over many rows: the SQL
and the row keys bound, each as one array, in order. Others run once per row."""

# sql, a row mapping to its positional values, default bound values, result processors
_Entry = tuple[str, Callable[[Any], tuple[Any, ...]], dict[str, Any], list[Any] | None]


class PgExecutor:
    """Runs Core statements on asyncpg's DB-API adapter (see the module docstring)."""

    __slots__ = ("_cache", "_conn", "_dbapi", "_dialect")

    dialect = "postgresql"

    def __init__(self, conn: Connection, cache: CompiledCache[Any]) -> None:
        self._conn, self._cache = conn, cache
        self._dialect = conn.dialect
        self._dbapi: Any = conn.connection.dbapi_connection

    def _compiled(self, stmt: Executable) -> _Entry:
        entry: _Entry | None = self._cache.get(stmt)
        if entry is None:
            compiled = cast(
                SQLCompiler,
                cast(ClauseElement, stmt).compile(
                    dialect=self._dialect, compile_kwargs={"render_postcompile": True}
                ),
            )
            names = list(compiled.positiontup or [])
            processors: dict[int, Callable[[Any], Any]] = {}
            for n, name in enumerate(names):
                impl = compiled.binds[name].type.dialect_impl(self._dialect)
                process = impl.bind_processor(self._dialect)
                if process is not None:
                    processors[n] = process
            entry = (compiled.string, _processed(picker(names), processors), compiled.params, None)
            self._cache.put(stmt, entry)
        return entry

    def begin(self) -> None:
        pass  # the adapter begins on the first statement

    def commit(self) -> None:
        self._call(self._dbapi.commit)

    def rollback(self) -> None:
        self._call(self._dbapi.rollback)

    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        if len(rows) > 1 and counted and stmt in COUNTED_MANY:
            sql, names = COUNTED_MANY[stmt]
            arrays = tuple([row[name] for row in rows] for name in names)
            return int(self._execute(sql, arrays).rowcount)
        sql, pick, _, _ = self._compiled(stmt)
        if len(rows) == 1 or counted:
            return sum(self._execute(sql, pick(row)).rowcount for row in rows)
        cursor = self._dbapi.cursor()
        self._call(cursor.executemany, sql, [pick(row) for row in rows])
        return len(rows)

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        sql, pick, bound, processors = self._compiled(stmt)
        if params:
            bound = {**bound, **params}
        cursor = self._execute(sql, pick(bound))
        rows: list[Any] = cursor.fetchall()
        if processors is None:
            processors = self._result_processors(stmt, cursor.description)
        if any(processors):
            return [
                tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
                for row in rows
            ]
        return rows

    def _result_processors(self, stmt: Executable, description: Any) -> list[Any]:
        """Each column's result processor, from its type and the type the server sent
        (asyncpg decodes nearly everything itself: most are None). Kept with the entry."""
        columns = list(getattr(stmt, "selected_columns", ()))
        processors: list[Any] = [None] * len(description or ())
        if len(columns) == len(processors):
            for n, (column, described) in enumerate(zip(columns, description, strict=True)):
                impl = column.type.dialect_impl(self._dialect)
                processors[n] = impl.result_processor(self._dialect, described[1])
        sql, pick, bound, _ = self._compiled(stmt)
        self._cache.put(stmt, (sql, pick, bound, processors))
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
