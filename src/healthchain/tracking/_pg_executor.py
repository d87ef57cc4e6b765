"""PostgreSQL over asyncpg: Core statements compiled once, run on the DB-API connection.

Going through ``Connection.execute`` costs each statement SQLAlchemy's cache-key walk,
parameter processing and result wrapping, and runs a counted update once per row: for
a group commit of 64 lifecycles that was 64 round trips for the ends alone. Here, as
:class:`~._executors.SqliteExecutor` does for sqlite3, each statement is compiled once
for the engine's own dialect (asyncpg's ``$1`` parameters), bound positionally, and run
on the PEP 249 connection SQLAlchemy hands out (``Connection.connection.dbapi_connection``,
public API): a statement for many rows is one ``executemany`` (asyncpg sends all rows
in one round trip), a counted update of many rows is one statement over ``unnest``ed
arrays (:data:`._pg_checked.COUNTED_MANY`), and prepared statements are the adapter's own per
connection cache, keyed by SQL text that no longer changes between calls.

A whole batch of operations that say their statements (experiment starts and ends,
saved-files folders, metric points whose steps are known, params, request records:
:meth:`._operations.Op.statements`)
becomes one statement (:func:`._pg_statements.batch_statement`), which :mod:`._backends`
awaits on the writer's asyncpg connection itself: one round trip in autocommit, no
greenlet and no adapter in between.

Errors are translated as ``Connection.execute`` would (``DBAPIError.instance``), so
callers see SQLAlchemy's exceptions and :func:`._transient.is_transient` judges them
alike; a lost connection is invalidated so the pool never hands it out again.

Only asyncpg's adapter is known to take ``$n`` positional parameters and bind lists as
arrays: any other driver keeps :class:`~._executors.CoreExecutor` (see :func:`usable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable

from ._executors import CompiledCache, prints_iso
from ._pg_checked import COUNTED_MANY
from ._pg_copy import Copier
from ._pg_statements import PACKED, Part, Statement, compiled, sql_and_arrays

__all__ = ["PgExecutor", "usable"]

T = TypeVar("T")


def usable(dialect: Dialect) -> bool:
    """Whether ``dialect`` is PostgreSQL over asyncpg (``$n`` parameters, arrays bound
    from lists), the one driver this executor is written for."""
    return (
        dialect.name == "postgresql"
        and dialect.driver == "asyncpg"
        and dialect.paramstyle == "numeric_dollar"
    )


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

    @property
    def iso_times(self) -> bool:
        return prints_iso(self._conn)

    def _compiled(self, stmt: Executable) -> Statement:
        return compiled(self._cache, stmt, self._dialect)

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

    def read(self, fn: Callable[[PgExecutor], T]) -> T:
        """``fn(self)`` in autocommit (no BEGIN, no ROLLBACK: see ``_backends``' reads),
        set on the adapter and left as it was: what ``execution_options(isolation_level=
        "AUTOCOMMIT")`` does, but that set and reset the level through the dialect, a
        quarter of an empty read's client instructions (callgrind: 315k -> 241k)."""
        self._dbapi.autocommit = True
        try:
            return fn(self)
        finally:
            self._dbapi.autocommit = False

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
        """Every part in one statement (:meth:`_insert_all`), but a large batch of metric
        points, which goes by COPY in the same transaction (:mod:`._pg_copy`)."""
        n = Copier.wanted(parts)
        copier = None if n is None else Copier.of(self._conn)
        if copier is None or n is None:
            return self._insert_all(parts)
        if self._single is not None:  # two statements now: a transaction around them
            self._dbapi.autocommit, self._single = False, None
        self._insert_all([part for i, part in enumerate(parts) if i != n])
        copier.copy(*parts[n])

    def _insert_all(self, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
        """Every part in one statement: each INSERT's rows as arrays, one per column,
        ``unnest``ed (metric points as texts: :mod:`._pg_packed`), the INSERTs but the
        last in a ``WITH`` (one statement: atomic alone, and foreign keys are checked at
        its end, so an experiment's tags may come with it). A part whose INSERT has no
        such form runs on its own first."""
        ready: list[Part] = []
        for stmt, rows in parts:
            if rows:
                packed = PACKED.get(stmt)
                if packed is not None:
                    ready.append((stmt, packed, packed.pick, rows))
                    continue
                entry = self._compiled(stmt)
                if entry.unnest is None:
                    self.run(stmt, rows)
                else:
                    ready.append((stmt, entry.unnest, entry.pick, rows))
        if ready:
            self._one_write()
            self._execute(*sql_and_arrays(self._shapes, ready))

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
