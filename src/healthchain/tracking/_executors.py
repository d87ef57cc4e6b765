"""Executors: run Core statements on one connection, synchronously, off the event loop.

:class:`SqliteExecutor` runs them on a plain sqlite3 connection (on aiosqlite's thread),
:class:`CoreExecutor` on a SQLAlchemy connection (inside ``run_sync``). Operations and
reads are written against the :class:`Executor` protocol and never know which.
"""

from __future__ import annotations

import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ._schema import STATIC_STATEMENTS

__all__ = [
    "COMPILED_CACHE_SIZE",
    "CompiledCache",
    "CoreExecutor",
    "Executor",
    "SqliteExecutor",
    "picker",
    "prints_iso",
    "write_each",
]

COMPILED_CACHE_SIZE = 64
"""Compiled statements kept per backend besides the static ones (filtered lists come in
many shapes); the least recently compiled is dropped first."""


class Executor(Protocol):
    """What batch and read functions may do with a connection (sync, off the loop)."""

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect's name ("sqlite", "postgresql"), for dialect-only SQL."""
        ...

    @property
    def aware_times(self) -> bool:
        """Whether the driver returns every finite timestamptz as an aware UTC datetime
        (PostgreSQL over asyncpg), so reads need not convert them row by row."""
        ...

    @property
    def iso_times(self) -> bool:
        """Whether, besides :attr:`aware_times`, the session prints times in DateStyle
        ISO, so a time read as ISO text parses with ``datetime.fromisoformat``."""
        ...

    def begin(self, *, single: bool = False) -> None:
        """Begin a transaction; ``single``: it writes with one statement (reads aside),
        which the database makes atomic by itself, so none need be begun."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        """Execute ``stmt`` for each row; with ``counted``, return the exact rows affected."""
        ...

    def write_all(self, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
        """Run each INSERT over its rows (none: skipped), in order, as one statement where
        the backend can (:mod:`._pg_executor`), else one after another."""
        ...

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]: ...


class _ManyRows:
    """An ``INSERT .. VALUES (?, ..)`` rewritten to bind many rows in one statement.

    sqlite3's ``executemany`` runs one statement per row and releases the GIL around
    each: under load, every row then waits for the event loop's thread to hand the GIL
    back. One statement per chunk of rows is one wait per chunk. A chunk binds at most
    999 parameters (the limit of SQLite builds before 3.32); each size used is a power
    of two, or 3 (a three-component pipeline in one statement rather than two), so a
    connection's statement cache holds a few shapes, not one per length.
    """

    __slots__ = ("_head", "_row", "_sql", "_tail", "largest")

    def __init__(self, sql: str, width: int) -> None:
        start = sql.index(" VALUES (") + len(" VALUES ")
        end, depth = start, 0
        while True:  # to the row's closing parenthesis (a value may be a function call)
            depth += (sql[end] == "(") - (sql[end] == ")")
            end += 1
            if not depth:
                break
        self._head, self._row, self._tail = sql[:start], sql[start:end], sql[end:]
        self.largest = 1 << ((999 // width).bit_length() - 1)
        self._sql: dict[int, str] = {}

    def sql(self, size: int) -> str:
        text = self._sql.get(size)
        if text is None:
            text = self._sql[size] = f"{self._head}{', '.join([self._row] * size)}{self._tail}"
        return text

    def chunks(self, count: int) -> Iterator[tuple[int, int]]:
        """``(start, size)`` of each chunk of ``count`` rows."""
        start = 0
        while start < count:
            left = count - start
            if left >= self.largest:
                size = self.largest
            else:
                size = 3 if left == 3 else 1 << (left.bit_length() - 1)
            yield start, size
            start += size


_Compiled = tuple[str, Callable[[Any], Any], dict[str, Any], _ManyRows | None]
V = TypeVar("V")


class CompiledCache(Generic[V]):
    """Compiled SQL by statement: static statements for good, others up to a bound.

    Shared by the threads of one backend's connections. Keyed by the statement itself
    (statements hash and compare by identity), so an entry keeps its statement alive and
    no other statement can ever be served its SQL. What an entry holds is the executor's.
    """

    __slots__ = ("_lock", "_others", "_static", "maxsize")

    def __init__(self, maxsize: int = COMPILED_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._static: dict[Executable, V] = {}
        self._others: dict[Executable, V] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._static) + len(self._others)

    def get(self, stmt: Executable) -> V | None:
        entry = self._static.get(stmt)
        if entry is not None:
            return entry
        return self._others.get(stmt)

    def put(self, stmt: Executable, entry: V) -> None:
        if stmt in STATIC_STATEMENTS:
            self._static[stmt] = entry
            return
        with self._lock:
            self._others[stmt] = entry
            while len(self._others) > self.maxsize:
                del self._others[next(iter(self._others))]


class SqliteExecutor:
    """Runs Core statements on a plain sqlite3 connection.

    Statements are compiled with positional parameters, which sqlite3 binds faster than
    named ones; each row's values are picked in the compiled order by a C-level
    ``itemgetter``. Compiled statements are kept in a bounded :class:`CompiledCache`.
    """

    __slots__ = ("_cache", "_conn")

    _dialect = SQLiteDialect_pysqlite(paramstyle="qmark")
    dialect = "sqlite"
    aware_times = iso_times = False

    def __init__(self, conn: sqlite3.Connection, cache: CompiledCache[_Compiled]) -> None:
        self._conn, self._cache = conn, cache

    def _compiled(self, stmt: Executable) -> _Compiled:
        entry = self._cache.get(stmt)
        if entry is None:
            compiled = cast(
                SQLCompiler,
                cast(ClauseElement, stmt).compile(
                    dialect=self._dialect, compile_kwargs={"render_postcompile": True}
                ),
            )
            names = compiled.positiontup or []
            many = None
            if compiled.isinsert and " VALUES (" in compiled.string and len(names) < 999:
                many = _ManyRows(compiled.string, len(names))
            entry = (compiled.string, picker(names), compiled.params, many)
            self._cache.put(stmt, entry)
        return entry

    def begin(self, *, single: bool = False) -> None:
        # IMMEDIATE takes the write lock up front, so a transaction that reads before
        # it writes waits on the busy timeout instead of failing with SQLITE_BUSY.
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        sql, pick, _, many = self._compiled(stmt)
        if len(rows) == 1:
            return self._conn.execute(sql, pick(rows[0])).rowcount
        if many is None:
            return self._conn.executemany(sql, map(pick, rows)).rowcount
        execute, flat = self._conn.execute, chain.from_iterable
        return sum(
            execute(many.sql(size), tuple(flat(map(pick, rows[start : start + size])))).rowcount
            for start, size in many.chunks(len(rows))
        )

    def write_all(self, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
        write_each(self, parts)

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        sql, pick, bound, _ = self._compiled(stmt)
        if params:
            bound = {**bound, **params}
        return self._conn.execute(sql, pick(bound)).fetchall()


class CoreExecutor:
    """Runs Core statements through a (greenlet-backed) SQLAlchemy connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> str:
        return self._conn.dialect.name

    @property
    def aware_times(self) -> bool:
        dialect = self._conn.dialect
        return dialect.name == "postgresql" and dialect.driver == "asyncpg"

    @property
    def iso_times(self) -> bool:
        return self.aware_times and prints_iso(self._conn)

    def begin(self, *, single: bool = False) -> None:
        pass  # SQLAlchemy begins on first use

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        if counted or len(rows) == 1:
            # executemany row counts are not reliable on every driver
            return sum(self._conn.execute(stmt, row).rowcount for row in rows)
        self._conn.execute(stmt, list(rows))
        return len(rows)

    def write_all(self, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
        write_each(self, parts)

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        return list(self._conn.execute(stmt, params or {}).all())


def prints_iso(conn: Connection) -> bool:
    """Whether the asyncpg session behind ``conn`` prints times in DateStyle ISO.

    asyncpg keeps the server's report of the setting (sent at connect and on each
    change): reading it is no round trip.
    """
    settings = conn.connection.driver_connection.get_settings()  # type: ignore[union-attr]
    return str(getattr(settings, "DateStyle", "")).startswith("ISO")


def write_each(ex: Executor, parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> None:
    """:meth:`Executor.write_all` one statement after another."""
    for stmt, rows in parts:
        if rows:
            ex.run(stmt, rows)


def picker(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function taking a row mapping to its values in ``names`` order, as a tuple."""
    if not names:
        return lambda _row: ()
    if len(names) == 1:
        one = names[0]
        return lambda row: (row[one],)
    return operator.itemgetter(*names)
