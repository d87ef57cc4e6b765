"""Backends: run a batch of operations, or a read, for one tracker on its engine.

* :class:`SqliteBackend` ships each whole transaction (or read) to the aiosqlite
  connection's own thread as one function (:mod:`._sqlite_thread`): one thread hop per
  transaction instead of one per statement is what makes group commits cheap.
* :class:`CoreBackend` runs the same functions through ``AsyncConnection.run_sync`` for
  every other async dialect: on PostgreSQL over asyncpg with statements compiled once and
  many rows per round trip (:mod:`._pg_executor`), and a batch of experiment starts and
  ends, saved-files folders, metric points, params and request records as one statement
  awaited on the writer's asyncpg connection directly.

Backends only run functions: what a batch does is :func:`._batch.apply_batch`'s.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import LRUCache

from ._batch import apply_batch, statements_of
from ._codecs import Codec, SqliteCodec
from ._executors import COMPILED_CACHE_SIZE, CompiledCache, CoreExecutor, Executor, SqliteExecutor
from ._operations import Op
from ._pg_copy import Copier
from ._pg_executor import PgExecutor
from ._pg_executor import usable as pg_usable
from ._pg_statements import batch_statement
from ._sqlite_thread import ConnectionThread
from ._transient import is_transient

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["DRIVER_EXECUTOR", "Backend", "CoreBackend", "SqliteBackend"]

DRIVER_EXECUTOR = True
"""Whether PostgreSQL over asyncpg runs on :class:`._pg_executor.PgExecutor`; False runs
it through ``Connection.execute`` as other drivers do (the tests run both)."""

REPLAN_FIRST = 32
"""Direct writes on one writer connection before its statements are first prepared again
(:meth:`CoreBackend._replan`); then after 64, 128..."""

T = TypeVar("T")


class Backend:
    """Runs batches and reads for one tracker; owns the writer's connection."""

    codec: Codec = Codec()

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, ops: Sequence[Op]) -> list[Any]:
        raise NotImplementedError

    async def read(self, fn: Callable[[Executor], T]) -> T:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class SqliteBackend(Backend):
    """One hop to aiosqlite's thread per transaction or read."""

    codec = SqliteCodec()

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._writer: AsyncConnection | None = None
        self._thread: ConnectionThread | None = None
        self._compiled: CompiledCache[Any] = CompiledCache()

    async def write(self, ops: Sequence[Op]) -> list[Any]:
        if self._thread is None:
            self._writer = await self.engine.connect()
            self._thread = await ConnectionThread.of(self._writer)
        return await self._thread.run(self._apply, ops)

    def _apply(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> list[Any]:
        return apply_batch(SqliteExecutor(conn, self._compiled), ops)

    async def read(self, fn: Callable[[Executor], T]) -> T:
        async with self.engine.connect() as conn:
            return await (await ConnectionThread.of(conn)).run(self._read, fn)

    def _read(self, conn: sqlite3.Connection, fn: Callable[[Executor], T]) -> T:
        ex = SqliteExecutor(conn, self._compiled)
        conn.execute("BEGIN")  # one snapshot for every query of this read
        try:
            return fn(ex)
        finally:
            conn.rollback()

    async def aclose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()


def _idle(engine: AsyncEngine) -> int:
    """Connections the engine's pool holds idle (0 for a pool that keeps none)."""
    checkedin = getattr(engine.pool, "checkedin", None)
    return int(checkedin()) if callable(checkedin) else 0


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to release
        await conn.invalidate()
        await conn.close()


class CoreBackend(Backend):
    """Every other async dialect, through SQLAlchemy Core.

    On PostgreSQL over asyncpg, batches and reads run on :class:`._pg_executor.PgExecutor`
    (statements compiled once, many rows per round trip); :data:`DRIVER_EXECUTOR` False
    (as for any other driver) runs them through ``Connection.execute`` instead.

    Reads run in autocommit: at PostgreSQL's default isolation (read committed) each
    statement sees its own snapshot inside a transaction too, so the BEGIN and the
    ROLLBACK around a read were two round trips buying nothing.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._writer: AsyncConnection | None = None
        self._driver: Any = None
        """The writer's asyncpg connection, for :meth:`_write_direct`."""
        self._direct_writes = 0
        self._replan_at = REPLAN_FIRST
        # SQLAlchemy's own compiled cache, bounded tighter than the engine's 500 entries:
        # a compiled list query keeps its statement alive, hundreds of KiB with many tags.
        self._compiled: LRUCache[Any, Any] = LRUCache(COMPILED_CACHE_SIZE)
        self._statements: CompiledCache[Any] = CompiledCache()
        self._shapes: dict[Any, str] = {}
        self._direct = DRIVER_EXECUTOR and pg_usable(engine.dialect)
        self._pg = partial(PgExecutor, cache=self._statements, shapes=self._shapes)
        self._executor: Callable[[Connection], Executor] = (
            self._pg if self._direct else CoreExecutor
        )

    async def _connect(self) -> AsyncConnection:
        conn = await self.engine.connect()
        return await conn.execution_options(compiled_cache=self._compiled)

    async def write(self, ops: Sequence[Op]) -> list[Any]:
        if self._writer is None:
            self._writer = await self._connect()
        if self._direct and await self._write_direct(ops):
            return [None] * len(ops)
        executor = self._executor
        try:
            return await self._writer.run_sync(lambda conn: apply_batch(executor(conn), ops))
        except Exception as exc:
            if is_transient(exc):  # the connection may be gone: take a new one next time
                await self._drop_writer()
            raise

    async def _write_direct(self, ops: Sequence[Op]) -> bool:
        """``ops`` as one statement (:func:`._pg_statements.batch_statement`) awaited on
        the writer's asyncpg connection itself, in autocommit: no greenlet, no DB-API
        adapter, for the batches of starts, ends, folders, metric points, params and
        request records that make up the write load. False, with nothing written, where
        that does not apply or the statement failed: the batch then runs as any other
        (:func:`._batch.apply_batch`), which gives a failure its translated error or
        replays the batch one op at a time."""
        parts = statements_of(ops)
        if not parts or Copier.wanted(parts) is not None:
            # A large batch of points goes by COPY, in the transaction the adapter's
            # path begins: its BEGIN and COMMIT are two round trips of more than 10,000 rows.
            return False
        planned = batch_statement(self._statements, self._shapes, self.engine.dialect, parts)
        if not planned:
            return False
        assert self._writer is not None
        if self._driver is None:
            self._driver = (await self._writer.get_raw_connection()).driver_connection
        sql, params, count = planned
        # before the statement, never between a commit and its caller's result
        self._direct_writes += 1
        if self._direct_writes > self._replan_at:
            await self._replan()
        try:
            status = await self._driver.execute(sql, *params)
        except Exception as exc:
            if is_transient(exc):  # not answering, or gone: the writer retries
                await self._drop_writer()
                raise
            return False  # one statement: nothing of it was written
        # a count that falls short means nothing was written (one row, none changed)
        return count is None or status.endswith(f" {count}")

    async def _replan(self) -> None:
        """Prepare the writer's statements again, so the server plans them for the tables
        as they are now, next after twice as many direct writes.

        PostgreSQL keeps a prepared statement's generic plan until the table's statistics
        change, which never happens with autovacuum off: END's batch UPDATE planned while
        ``experiments`` was small joins it by a sequential scan for the connection's life,
        every END batch reading every experiment. Replanning as the writes double took the
        server's instructions per lifecycle over 4,000 from 856k to 815k (callgrind), and
        keeps an END batch's cost from growing with the table."""
        self._replan_at *= 2
        await self._driver.reload_schema_state()

    async def _drop_writer(self) -> None:
        """Discard the writer's connection (it may be gone); the next write takes a new one."""
        writer, self._writer, self._driver = self._writer, None, None
        self._direct_writes, self._replan_at = 0, REPLAN_FIRST
        if writer is not None:
            await _discard(writer)

    async def read(self, fn: Callable[[Executor], T]) -> T:
        """``fn`` on a pooled connection; one the server has closed (a restart, an idle
        timeout) is dropped and the read retried, on each idle one and then a new one."""
        fresh = False
        while True:
            try:
                return await self._read(fn)
            except DBAPIError as exc:
                if fresh or not exc.connection_invalidated:
                    raise
                fresh = _idle(self.engine) == 0  # the next try opens a new connection

    async def _read(self, fn: Callable[[Executor], T]) -> T:
        executor = self._executor
        async with self.engine.connect() as conn:
            if self._direct:  # autocommit set on the adapter itself (see PgExecutor.read)
                pg = self._pg
                return await conn.run_sync(lambda sync_conn: pg(sync_conn).read(fn))
            await conn.execution_options(
                compiled_cache=self._compiled, isolation_level="AUTOCOMMIT"
            )
            return await conn.run_sync(lambda sync_conn: fn(executor(sync_conn)))

    async def aclose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
