"""How writes and reads reach the database.

All statements are SQLAlchemy Core objects built once here from ``_schema``. Two
executors run them:

* :class:`SqliteBackend` ships each whole transaction (or read) to the aiosqlite
  connection's own thread as one function. aiosqlite runs every call on that thread and a
  thread hop costs ~150 µs on small machines, so one hop per transaction instead of one
  per statement is what makes group commits cheap (``_sqlite_thread``, the one module
  using aiosqlite internals). The sqlite3 work then happens off the event loop thread.
* :class:`CoreBackend` runs the same functions through ``AsyncConnection.run_sync`` for
  every other async dialect (PostgreSQL via asyncpg).

A batch of operations is applied in one transaction; if any of them fails, the batch
is rolled back and replayed one operation at a time, so one bad operation never fails
its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from sqlalchemy import Connection, bindparam, delete, insert, literal_column, select, update
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.util import LRUCache

from ._exceptions import (
    ExperimentNotFoundError,
    ExperimentStateError,
    InvalidInputError,
    TrackerError,
)
from ._schema import experiment_tags, experiments, pipeline_components, requests
from ._settings import HEARTBEAT_INTERVAL_RANGE
from ._sqlite_thread import run_on_connection_thread
from ._values import printable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "COMPILED_CACHE_SIZE",
    "Backend",
    "BeatOp",
    "CoreBackend",
    "DeleteOp",
    "EndOp",
    "Executor",
    "Op",
    "ReapOp",
    "RequestsOp",
    "SqliteBackend",
    "StartOp",
    "from_db_time",
    "describe_ops",
    "is_transient",
    "static",
]

T = TypeVar("T")
E = TypeVar("E", bound=Executable)

# Literal SQL rather than bound values, so batches bind only their own rows' values.
_RUNNING: ColumnClause[Any] = literal_column("'RUNNING'")
_FAILED: ColumnClause[Any] = literal_column("'FAILED'")


def _insert(table: Any, *skip: str) -> Executable:
    return insert(table).values({c.name: bindparam(c.name) for c in table.c if c.name not in skip})


INSERT_EXPERIMENT = _insert(experiments)
INSERT_TAG = _insert(experiment_tags)
INSERT_COMPONENT = _insert(pipeline_components, "id")
INSERT_REQUEST = _insert(requests, "id")
END = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"), experiments.c.status == _RUNNING)
    .values(status=bindparam("b_status"), end_time=bindparam("b_end"), error=bindparam("b_error"))
)
BEAT = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"), experiments.c.status == _RUNNING)
    .values(heartbeat_at=bindparam("b_beat"))
)
REAP = (
    update(experiments)
    .where(
        experiments.c.id == bindparam("b_id"),
        experiments.c.status == _RUNNING,
        experiments.c.heartbeat_at == bindparam("b_seen"),
    )
    .values(status=_FAILED, end_time=bindparam("b_end"), error=bindparam("b_error"))
)
RUNNING_ROWS = select(
    experiments.c.id,
    experiments.c.heartbeat_at,
    experiments.c.heartbeat_interval,
    experiments.c.host,
    experiments.c.pid,
).where(experiments.c.status == _RUNNING)
STATUS_OF = select(experiments.c.status).where(experiments.c.id == bindparam("b_id"))
DELETE = delete(experiments).where(experiments.c.id == bindparam("b_id"))

# Module-level statements, alive for the whole process: their compiled SQL is kept for
# good, keyed by id. ``_queries`` adds its own.
STATIC_STATEMENTS: set[int] = {
    id(s)
    for s in (INSERT_EXPERIMENT, INSERT_TAG, INSERT_COMPONENT, INSERT_REQUEST, END, BEAT, REAP)
}
STATIC_STATEMENTS.update(id(s) for s in (RUNNING_ROWS, STATUS_OF, DELETE))


COMPILED_CACHE_SIZE = 64
"""Compiled statements kept per backend besides the static ones (filtered lists come in
many shapes); the least recently compiled is dropped first."""


def static(stmt: E) -> E:
    """Mark a module-level statement (never one built per call): its compiled SQL is kept."""
    STATIC_STATEMENTS.add(id(stmt))
    return stmt


_fromisoformat = datetime.fromisoformat


def from_db_time(value: Any) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite stores naive UTC text)."""
    if value is None:
        return None
    if value.__class__ is str:
        if len(value) == 26:  # our own format, naive UTC: the fast path for large lists
            return _fromisoformat(value + "+00:00")
        value = _fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


class Executor(Protocol):
    """What batch and read functions may do with a connection (sync, off the loop)."""

    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def run(
        self, stmt: Executable, rows: Sequence[dict[str, Any]], *, counted: bool = False
    ) -> int:
        """Execute ``stmt`` for each row; with ``counted``, return the exact rows affected."""
        ...

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]: ...


# --- operations -------------------------------------------------------------------------


class Op:
    """One queued write; ``apply`` runs inside a transaction on an :class:`Executor`."""

    __slots__ = ("future",)
    what: ClassVar[str] = "write"
    """What one unit of it is, for 'not recorded: ...' messages ("experiment start")."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None

    def apply(self, ex: Executor) -> Any:
        raise NotImplementedError

    @property
    def units(self) -> int:
        return 1

    @property
    def experiment_ids(self) -> list[str]:
        return []


class StartOp(Op):
    __slots__ = ("components", "experiment", "tags")
    what = "experiment start"

    def __init__(
        self,
        experiment: dict[str, Any],
        tags: list[dict[str, Any]],
        components: list[dict[str, Any]],
    ) -> None:
        super().__init__()
        self.experiment, self.tags, self.components = experiment, tags, components

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment["id"]]

    def apply(self, ex: Executor) -> None:
        ex.run(INSERT_EXPERIMENT, [self.experiment])
        if self.tags:
            ex.run(INSERT_TAG, self.tags)
        if self.components:
            ex.run(INSERT_COMPONENT, self.components)


class EndOp(Op):
    __slots__ = ("row",)
    what = "experiment end"

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__()
        self.row = row

    @property
    def experiment_ids(self) -> list[str]:
        return [self.row["b_id"]]

    def apply(self, ex: Executor) -> None:
        if ex.run(END, [self.row], counted=True) == 1:
            return
        experiment_id = self.row["b_id"]
        found = ex.query(STATUS_OF, {"b_id": experiment_id})
        if not found:
            raise ExperimentNotFoundError(experiment_id)
        raise ExperimentStateError(
            f"experiment {experiment_id!r} has already ended as {found[0][0]}; "
            "an ended experiment cannot be ended again"
        )


class BeatOp(Op):
    __slots__ = ("rows",)
    what = "heartbeat"

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    def apply(self, ex: Executor) -> None:
        ex.run(BEAT, self.rows)


class RequestsOp(Op):
    __slots__ = ("experiment_id", "rows")
    what = "request record"

    def __init__(self, experiment_id: str, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.experiment_id, self.rows = experiment_id, rows

    @property
    def units(self) -> int:
        return len(self.rows)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment_id]

    def apply(self, ex: Executor) -> None:
        try:
            ex.run(INSERT_REQUEST, self.rows)
        except (sqlite3.IntegrityError, IntegrityError):
            ex.rollback()  # PostgreSQL refuses anything more in a failed transaction
            ex.begin()
            if not ex.query(STATUS_OF, {"b_id": self.experiment_id}):
                raise ExperimentNotFoundError(self.experiment_id) from None
            raise InvalidInputError(
                f"a request index in {[r['seq'] for r in self.rows]!r} was already logged for "
                f"experiment {self.experiment_id!r}; give each request a unique index"
            ) from None


class ReapOp(Op):
    """Mark RUNNING experiments whose heartbeat is too old as FAILED; returns their ids.

    Each row is judged on its own values, which another program may have written: a row
    without a readable heartbeat is left alone; an interval outside
    ``HEARTBEAT_INTERVAL_RANGE`` is judged by the nearest bound, an unusable one (NULL,
    NaN, not positive) by the longest. The end time recorded is the last heartbeat, when
    the process was last known alive; the error says when it was reaped.
    """

    __slots__ = ("codec", "now")
    what = "reap"

    def __init__(self, now: datetime, codec: Codec) -> None:
        super().__init__()
        self.now, self.codec = now, codec

    def apply(self, ex: Executor) -> list[str]:
        reaped: list[str] = []
        for experiment_id, beat, interval, host, pid in ex.query(RUNNING_ROWS):
            try:
                seen = from_db_time(beat)
            except (ValueError, TypeError, AttributeError, OverflowError):
                seen = None
            if seen is None:
                continue
            judged = _judged_interval(interval)
            if not (self.now - seen).total_seconds() > 3 * judged:
                continue
            error = (
                f"process {pid} on host {host!r} stopped reporting: last heartbeat at "
                f"{seen.isoformat()}, more than 3 x {judged:g} s before it was reaped at "
                f"{self.now.isoformat()}"
            )
            if judged != interval:
                error += f" (its recorded heartbeat interval, {interval!r}, is out of range)"
            row = {"b_id": experiment_id, "b_seen": beat, "b_end": self.codec.time(seen)}
            row["b_error"] = printable(error)
            if ex.run(REAP, [row], counted=True):
                reaped.append(experiment_id)
        return reaped


def _judged_interval(interval: Any) -> float:
    """A row's heartbeat interval clamped to the range trackers accept; the longest if unusable."""
    low, high = HEARTBEAT_INTERVAL_RANGE
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        return high  # NULL, text, NaN, zero or negative: written by something else
    return min(max(float(interval), low), high)


class DeleteOp(Op):
    __slots__ = ("ids",)
    what = "experiment deletion"

    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.ids = ids

    @property
    def units(self) -> int:
        return len(self.ids)

    @property
    def experiment_ids(self) -> list[str]:
        return self.ids

    def apply(self, ex: Executor) -> int:
        return ex.run(DELETE, [{"b_id": i} for i in self.ids], counted=True)


def describe_ops(ops: Sequence[Op], *, max_ids: int = 5) -> str:
    """What ``ops`` would have written: '7 request records, 1 experiment end (experiment X)'."""
    units: Counter[str] = Counter()
    ids: dict[str, None] = {}
    for op in ops:
        units[op.what] += op.units
        ids.update(dict.fromkeys(op.experiment_ids))
    text = ", ".join(f"{n} {what}{'' if n == 1 else 's'}" for what, n in units.items())
    if ids:
        shown = list(ids)[:max_ids]
        more = f" and {len(ids) - max_ids} more" if len(ids) > max_ids else ""
        noun = "experiment" if len(ids) == 1 else "experiments"
        text += f" ({noun} {', '.join(shown)}{more})"
    return text


def is_transient(exc: BaseException) -> bool:
    """True for failures of the storage itself (unreachable, locked), which a retry may cure.

    Anything else is about the operation (a constraint, a bad value) and is final.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.orig or exc
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        return any(word in text for word in _TRANSIENT_SQLITE)
    if _transient_sqlstate(exc):
        return True
    return isinstance(exc, OSError | TimeoutError | ConnectionError) and not isinstance(
        exc, TrackerError
    )


_TRANSIENT_SQLITE = ("locked", "busy", "disk I/O error", "unable to open")
# PostgreSQL error codes a retry may cure: connection exceptions (08), insufficient
# resources such as too many connections (53), the server shutting down or starting up
# (57P), system I/O errors (58); a serialization failure or deadlock (40001, 40P01); a
# standby that is read-only until a failover completes (25006).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P", "58")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "25006"})


def _transient_sqlstate(exc: BaseException) -> bool:
    # asyncpg's own errors (raised raw while connecting) and SQLAlchemy's translations
    # of them both carry the code as ``sqlstate``.
    state = getattr(exc, "sqlstate", None)
    if not isinstance(state, str):
        return False
    if state.startswith(_TRANSIENT_SQLSTATE_CLASSES) or state in _TRANSIENT_SQLSTATES:
        return True
    # 55000 is a broad class; with this text it is a database closed to new connections
    # (ALTER DATABASE ... ALLOW_CONNECTIONS false), which is how maintenance looks.
    return state == "55000" and "not currently accepting connections" in str(exc)


def _rollback(ex: Executor) -> None:
    # A broken connection cannot roll back; the server already did.
    with contextlib.suppress(Exception):
        ex.rollback()


def apply_batch(ex: Executor, ops: Sequence[Op]) -> list[Any]:
    """Apply ``ops`` in one transaction; on failure replay each alone. Results or errors.

    A transient failure (storage unreachable or locked) is raised, not recorded, so the
    writer can retry the whole batch once storage is back.
    """
    if len(ops) > 1:
        try:
            ex.begin()
            results = _apply_grouped(ex, ops)
            ex.commit()
            return results
        except Exception as exc:
            _rollback(ex)
            if is_transient(exc):
                raise
    outcomes: list[Any] = []
    for op in ops:
        try:
            ex.begin()
            result = op.apply(ex)
            ex.commit()
        except Exception as exc:
            _rollback(ex)
            if is_transient(exc):
                raise
            outcomes.append(exc)
        else:
            outcomes.append(result)
    return outcomes


class _Conflict(Exception):
    """A grouped batch could not be applied as a whole; it is replayed op by op."""


def _apply_grouped(ex: Executor, ops: Sequence[Op]) -> list[Any]:
    starts = [op for op in ops if isinstance(op, StartOp)]
    if starts:
        ex.run(INSERT_EXPERIMENT, [op.experiment for op in starts])
        tags = [row for op in starts for row in op.tags]
        if tags:
            ex.run(INSERT_TAG, tags)
        components = [row for op in starts for row in op.components]
        if components:
            ex.run(INSERT_COMPONENT, components)
    request_rows = [row for op in ops if isinstance(op, RequestsOp) for row in op.rows]
    if request_rows:
        ex.run(INSERT_REQUEST, request_rows)
    ends = [op.row for op in ops if isinstance(op, EndOp)]
    if ends and ex.run(END, ends, counted=True) != len(ends):
        raise _Conflict
    beats = [row for op in ops if isinstance(op, BeatOp) for row in op.rows]
    if beats:
        ex.run(BEAT, beats)
    return [op.apply(ex) if isinstance(op, ReapOp | DeleteOp) else None for op in ops]


# --- codecs: what values look like for each backend -------------------------------------


class Codec:
    """Python values as the backend's statements take them."""

    json_as_text = False

    @staticmethod
    def time(value: datetime) -> Any:
        return value


class SqliteCodec(Codec):
    """SQLite takes timestamps as naive UTC text (SQLAlchemy's format) and JSON as text."""

    json_as_text = True

    @staticmethod
    def time(value: datetime) -> Any:
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")[:-6]  # drop "+00:00"


# --- executors and backends -------------------------------------------------------------


_Compiled = tuple[str, Callable[[Any], Any], dict[str, Any]]


class CompiledCache:
    """Compiled SQL by statement: static statements for good, others up to a bound.

    Shared by the threads of one backend's connections. Entries of non-static statements
    hold the statement itself, so its ``id`` cannot be reused while the entry lives, and a
    hit is checked by identity.
    """

    __slots__ = ("_lock", "_others", "_static", "maxsize")

    def __init__(self, maxsize: int = COMPILED_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._static: dict[int, _Compiled] = {}
        self._others: dict[int, tuple[Executable, _Compiled]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._static) + len(self._others)

    def get(self, stmt: Executable) -> _Compiled | None:
        key = id(stmt)
        entry = self._static.get(key)
        if entry is not None:
            return entry
        found = self._others.get(key)
        return found[1] if found is not None and found[0] is stmt else None

    def put(self, stmt: Executable, entry: _Compiled) -> None:
        key = id(stmt)
        if key in STATIC_STATEMENTS:
            self._static[key] = entry
            return
        with self._lock:
            self._others[key] = (stmt, entry)
            while len(self._others) > self.maxsize:
                del self._others[next(iter(self._others))]


class _SqliteExecutor:
    """Runs Core statements on a plain sqlite3 connection.

    Statements are compiled with positional parameters, which sqlite3 binds faster than
    named ones; each row's values are picked in the compiled order by a C-level
    ``itemgetter``. Compiled statements are kept in a bounded :class:`CompiledCache`.
    """

    __slots__ = ("_cache", "_conn")

    _dialect = SQLiteDialect_pysqlite(paramstyle="qmark")

    def __init__(self, conn: sqlite3.Connection, cache: CompiledCache) -> None:
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
            entry = (compiled.string, _picker(names), compiled.params)
            self._cache.put(stmt, entry)
        return entry

    def begin(self) -> None:
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
        sql, pick, _ = self._compiled(stmt)
        if len(rows) == 1:
            return self._conn.execute(sql, pick(rows[0])).rowcount
        return self._conn.executemany(sql, map(pick, rows)).rowcount

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        sql, pick, bound = self._compiled(stmt)
        if params:
            bound = {**bound, **params}
        return self._conn.execute(sql, pick(bound)).fetchall()


class _CoreExecutor:
    """Runs Core statements through a (greenlet-backed) SQLAlchemy connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def begin(self) -> None:
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

    def query(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Any]:
        return list(self._conn.execute(stmt, params or {}).all())


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
        self._compiled = CompiledCache()

    async def write(self, ops: Sequence[Op]) -> list[Any]:
        if self._writer is None:
            self._writer = await self.engine.connect()
        return await run_on_connection_thread(self._writer, self._apply, ops)

    def _apply(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> list[Any]:
        return apply_batch(_SqliteExecutor(conn, self._compiled), ops)

    async def read(self, fn: Callable[[Executor], T]) -> T:
        async with self.engine.connect() as conn:
            return await run_on_connection_thread(conn, self._read, fn)

    def _read(self, conn: sqlite3.Connection, fn: Callable[[Executor], T]) -> T:
        ex = _SqliteExecutor(conn, self._compiled)
        conn.execute("BEGIN")  # one snapshot for every query of this read
        try:
            return fn(ex)
        finally:
            conn.rollback()

    async def aclose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()


def _picker(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function taking a row mapping to its values in ``names`` order, as a tuple."""
    if not names:
        return lambda _row: ()
    if len(names) == 1:
        one = names[0]
        return lambda row: (row[one],)
    return operator.itemgetter(*names)


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to release
        await conn.invalidate()
        await conn.close()


class CoreBackend(Backend):
    """Every other async dialect, through SQLAlchemy Core."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._writer: AsyncConnection | None = None
        # SQLAlchemy's own compiled cache, bounded tighter than the engine's 500 entries:
        # a compiled list query keeps its statement alive, hundreds of KiB with many tags.
        self._compiled: LRUCache[Any, Any] = LRUCache(COMPILED_CACHE_SIZE)

    async def _connect(self) -> AsyncConnection:
        conn = await self.engine.connect()
        return await conn.execution_options(compiled_cache=self._compiled)

    async def write(self, ops: Sequence[Op]) -> list[Any]:
        if self._writer is None:
            self._writer = await self._connect()
        try:
            return await self._writer.run_sync(lambda conn: apply_batch(_CoreExecutor(conn), ops))
        except Exception as exc:
            if is_transient(exc):  # the connection may be gone: take a new one next time
                writer, self._writer = self._writer, None
                await _discard(writer)
            raise

    async def read(self, fn: Callable[[Executor], T]) -> T:
        async with self.engine.connect() as conn:
            await conn.execution_options(compiled_cache=self._compiled)
            return await conn.run_sync(lambda sync_conn: fn(_CoreExecutor(sync_conn)))

    async def aclose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
