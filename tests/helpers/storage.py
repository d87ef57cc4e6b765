"""Plain-SQL access to the database a test writes to, bypassing healthchain entirely.

Tests read back what the tracker stored through a connection of their own, the way a
user's ``sqlite3`` or ``psql`` session would: SQLite through the standard library,
PostgreSQL through asyncpg on a private event loop (so it may be called from the test's
thread or from a sync handler's worker thread, never from a running loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread
from sqlalchemy.engine import make_url

_QMARK = re.compile(r"\?")


def _numbered(sql: str) -> str:
    """``?`` placeholders (sqlite3's) as ``$1, $2, ...`` (asyncpg's)."""
    counter = iter(range(1, 1000))
    return _QMARK.sub(lambda _: f"${next(counter)}", sql)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass(frozen=True)
class Storage:
    """A storage URI as users write it, and a side door into the same database."""

    kind: Literal["sqlite", "postgresql"]
    uri: str
    path: Path | None = None
    """The SQLite file; None for PostgreSQL."""

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders) and return its rows as tuples."""
        if self.path is not None:
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                rows = conn.execute(sql, params).fetchall()
                conn.commit()
                return rows
        return asyncio.run(self._pg_query(_numbered(sql), params))

    async def _pg_query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        import asyncpg  # the postgres extra

        conn = await asyncpg.connect(_plain(self.uri))
        try:
            return [tuple(row) for row in await conn.fetch(sql, *params)]
        finally:
            await conn.close()

    def set_heartbeat(self, experiment_id: str, *, beat: Any, interval: Any = 10.0) -> None:
        """Set a row's heartbeat time and interval as raw values, the way another program
        (or a process that died) could have left them."""
        if isinstance(beat, datetime):
            beat = beat.astimezone(UTC).replace(tzinfo=None)
            if self.path is not None:
                beat = beat.isoformat(" ")  # how SQLite stores timestamps: naive UTC text
        self.query(
            "UPDATE experiments SET heartbeat_at = ?, heartbeat_interval = ? WHERE id = ?",
            beat,
            interval,
            experiment_id,
        )

    def has_table(self, name: str) -> bool:
        if self.path is not None:
            if not self.path.exists():
                return False
            sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT count(*) FROM pg_tables WHERE tablename = ? AND schemaname = 'public'"
        return bool(self.query(sql, name)[0][0])

    def statuses(self) -> list[str]:
        """Every experiment's status, oldest first; [] when nothing was ever created."""
        if not self.has_table("experiments"):
            return []
        return [status for (status,) in self.query("SELECT status FROM experiments ORDER BY id")]

    def drop_table(self, name: str) -> None:
        self.query(f"DROP TABLE IF EXISTS {name}")

    def with_short_waits(self) -> Storage:
        """The same database; on SQLite a 50 ms busy timeout, so an outage spans retries."""
        if self.path is None:
            return self
        return replace(self, uri=f"{self.uri}?timeout=0.05")


# -- taking storage away for real --------------------------------------------------------


@asynccontextmanager
async def exclusive_lock(db_path: Path) -> AsyncIterator[None]:
    """Another writer holding SQLite's exclusive lock until the block ends."""

    def acquire() -> sqlite3.Connection:
        conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        return conn

    def release(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")
        conn.close()

    conn = await anyio.to_thread.run_sync(acquire)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(release, conn)


@asynccontextmanager
async def postgres_down(url: str) -> AsyncIterator[None]:
    """The database refuses connections and every open one is dropped, until the block ends.

    What a client sees while its server restarts. The switch is flipped from the
    maintenance database, since a database cannot close its doors to its own session.
    """
    import asyncpg

    target = make_url(url)
    admin = await asyncpg.connect(
        target.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    name = f'"{target.database}"'
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                target.database,
            )
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    finally:
        await admin.close()


def take_away(storage: Storage) -> contextlib.AbstractAsyncContextManager[None]:
    """Storage unavailable for real while the block runs: SQLite locked, PostgreSQL down."""
    if storage.path is not None:
        return exclusive_lock(storage.path)
    return postgres_down(storage.uri)


def take_away_for(storage: Storage, seconds: float) -> threading.Event:
    """Take storage away for ``seconds`` from a background thread.

    Returns once storage is unavailable; the event is set once it is back.
    """
    away, back = threading.Event(), threading.Event()

    async def outage() -> None:
        async with take_away(storage):
            away.set()
            await asyncio.sleep(seconds)
        back.set()

    # Not a daemon: should the test fail meanwhile, the interpreter still waits for the
    # outage to end, so a PostgreSQL database is never left closed to connections.
    threading.Thread(target=asyncio.run, args=(outage(),), name="outage").start()
    if not away.wait(30):
        raise RuntimeError(f"could not take {storage.kind} storage away")
    return back
