"""Bringing a database's schema to the newest revision, safely under concurrency.

A fresh database gets the tables from ``_schema`` and is stamped with the head revision,
without importing Alembic (it costs more than the rest of a cold start). A database
that is behind is upgraded by the Alembic migrations in ``migrations/``. Either way
the work happens under a lock (SQLite's write lock, PostgreSQL's advisory lock), and
whoever waited re-checks, so processes opening one fresh database at once never race.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from sqlalchemy import Connection, delete, insert, inspect, select, text

from ._config import resolve_storage_uri
from ._engine import create_engine
from ._exceptions import StorageError
from ._schema import HEAD_REVISION, alembic_version, metadata
from ._settings import DEFAULT_STORAGE_URI
from ._storage_errors import StorageErrors

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "check_schema",
    "upgrade_database",
    "current_revision",
    "ensure_schema",
    "load_scripts",
    "run_migrations",
    "upgrade",
]

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


async def check_schema(engine: AsyncEngine, where: str) -> None:
    """For readers: raise :class:`StorageError` unless the schema is at head; never changes it."""
    async with engine.connect() as conn:
        revision = await conn.run_sync(current_revision)
        if revision == HEAD_REVISION:
            return
        has_tables = await conn.run_sync(_has_experiments)
    if revision is None and not has_tables:
        raise StorageError(
            f"{where} holds no healthchain experiments (it has no schema yet); record an "
            "experiment there first, or create the schema with 'healthchain db upgrade'"
        )
    if revision is not None and revision not in await anyio.to_thread.run_sync(_known_revisions):
        raise StorageError(
            f"{where} is at schema revision {revision!r}, which this version of healthchain "
            "does not know (was it written by a newer one?); upgrade healthchain to read it"
        )
    raise StorageError(
        f"{where} has an older schema (revision {revision!r}, this healthchain reads "
        f"{HEAD_REVISION!r}); reading never migrates it: run 'healthchain db upgrade' with "
        "write access to the database, or open it with a tracker that records"
    )


def _known_revisions() -> set[str]:
    return {script.revision for script in load_scripts().walk_revisions()}


async def upgrade(engine: AsyncEngine, *, force_alembic: bool = False) -> str | None:
    """Bring the schema to head under a lock; returns the revision it started from."""
    async with engine.connect() as conn:
        await _lock(conn)
        revision = await conn.run_sync(current_revision)
        if revision != HEAD_REVISION:
            fresh = revision is None and not await conn.run_sync(_has_experiments)
            if fresh and not force_alembic:
                await conn.run_sync(_create_fresh)
            else:
                # Alembic reads its scripts from disk: load them off the loop first.
                scripts = await anyio.to_thread.run_sync(load_scripts)
                await conn.run_sync(run_migrations, scripts, revision)
        await conn.commit()
    return revision


async def _lock(conn: AsyncConnection) -> None:
    backend = conn.dialect.name
    if backend == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _has_experiments(conn: Connection) -> bool:
    return inspect(conn).has_table("experiments")


def _create_fresh(conn: Connection) -> None:
    metadata.create_all(conn)
    alembic_version.create(conn, checkfirst=True)
    conn.execute(delete(alembic_version))
    conn.execute(insert(alembic_version).values(version_num=HEAD_REVISION))


def load_scripts() -> ScriptDirectory:
    """The migration scripts, every revision module loaded (file I/O: call off the loop)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "healthchain.tracking:migrations")
    scripts = ScriptDirectory.from_config(config)
    scripts.revision_map.get_revisions("heads")  # imports every version module now
    return scripts


def run_migrations(
    conn: Connection, scripts: ScriptDirectory, revision: str | None, target: str = "head"
) -> None:
    """Upgrade ``conn``'s database from ``revision`` to ``target`` with preloaded scripts.

    Alembic's documented pieces, not ``alembic.command.upgrade``: that one reads the
    scripts and ``env.py`` from disk wherever it runs, and a migration runs on the event
    loop's thread (inside ``run_sync``), where blocking file I/O is not allowed. So the
    scripts are loaded beforehand in a worker thread (:func:`load_scripts`) and applied
    here one revision at a time, each stamped as it lands, all in the caller's
    transaction.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    try:
        if revision is not None:
            scripts.get_revision(revision)
        # newest first, down to (not including) the current revision
        pending = list(scripts.iterate_revisions(target, revision or "base"))
    except CommandError as exc:
        raise StorageError(
            f"the database is at schema revision {revision!r}, which this version of "
            "healthchain does not know (was it written by a newer one?); upgrade "
            "healthchain to read it"
        ) from exc
    context = MigrationContext.configure(
        conn, opts={"target_metadata": metadata, "render_as_batch": True}
    )
    with Operations.context(context):
        for script in reversed(pending):
            script.module.upgrade()
            context.stamp(scripts, script.revision)


async def upgrade_database(storage_uri: str = DEFAULT_STORAGE_URI) -> tuple[str | None, str]:
    """Create or upgrade the schema of ``storage_uri``; returns ``(revision before, after)``.

    Opening a tracker does the same implicitly; this is the explicit form for operators
    (``healthchain db upgrade``). ``before`` is None for a database without a schema.
    """
    # Resolving imports the URL's driver (asyncpg: a tenth of a second of disk and CPU the
    # first time in a process): off the loop, with building the engine.
    storage = await anyio.to_thread.run_sync(resolve_storage_uri, storage_uri)
    engine = await anyio.to_thread.run_sync(create_engine, storage, None)
    try:
        with StorageErrors(storage, "upgrading the schema"):
            before = await upgrade(engine)
    finally:
        await engine.dispose()
    return before, HEAD_REVISION
