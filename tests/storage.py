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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
