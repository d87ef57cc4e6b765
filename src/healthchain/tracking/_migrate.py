"""Bringing a database's schema to the newest revision, safely under concurrency.

A fresh database gets the tables from ``_schema`` and is stamped with the head revision,
without importing Alembic (it costs more than the rest of a cold start). A database
that is behind is upgraded by the Alembic migrations in ``migrations/``. Either way
the work happens under a lock (SQLite's write lock, PostgreSQL's advisory lock), and
whoever waited re-checks, so processes opening one fresh database at once never race.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, inspect, select, text

from ._schema import HEAD_REVISION, alembic_version, metadata

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["current_revision", "ensure_schema", "upgrade"]

# pg_advisory_xact_lock key: the bytes of "hc-track" as a signed 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(b"hc-track", "big", signed=True)


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision, or None when it has none."""
    if not inspect(conn).has_table(alembic_version.name):
        return None
    return conn.execute(select(alembic_version.c.version_num)).scalar()


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create or upgrade the schema if it is not at the head revision."""
    async with engine.connect() as conn:
        if await conn.run_sync(current_revision) == HEAD_REVISION:
            return
    await upgrade(engine)


async def upgrade(engine: AsyncEngine, *, force_alembic: bool = False) -> str | None:
    """Bring the schema to head under a lock; returns the revision it started from."""
    async with engine.connect() as conn:
        await _lock(conn)
        revision = await conn.run_sync(current_revision)
        if revision != HEAD_REVISION:
            await conn.run_sync(_bring_to_head, revision, force_alembic)
        await conn.commit()
    return revision


async def _lock(conn: AsyncConnection) -> None:
    backend = conn.dialect.name
    if backend == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _bring_to_head(conn: Connection, revision: str | None, force_alembic: bool) -> None:
    if revision is None and not force_alembic and not inspect(conn).has_table("experiments"):
        metadata.create_all(conn)
        alembic_version.create(conn, checkfirst=True)
        conn.execute(delete(alembic_version))
        conn.execute(insert(alembic_version).values(version_num=HEAD_REVISION))
        return
    _run_alembic(conn, "head")


def _run_alembic(conn: Connection, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "healthchain.tracking:migrations")
    config.attributes["connection"] = conn
    command.upgrade(config, target)
