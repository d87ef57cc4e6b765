"""The PostgreSQL server the suite runs against: where it is, and emptying it."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from sqlalchemy.engine import make_url

from healthchain.tracking._schema import alembic_version, metadata

from . import unavailable

__all__ = [
    "POSTGRES_URL_ENV",
    "admin_fetch",
    "count_queries",
    "postgres_url",
    "reset_postgres",
    "sibling_database",
    "use_worker_database",
]

POSTGRES_URL_ENV = "HEALTHCHAIN_TEST_POSTGRES_URL"
# Every table the schema declares (written once, in _schema), plus Alembic's own.
_TABLES = ", ".join([t.name for t in metadata.sorted_tables] + [alembic_version.name])


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        unavailable(
            f"PostgreSQL tests need a server: set {POSTGRES_URL_ENV}="
            "postgresql://user@127.0.0.1:5432/dbname (.ci/run does)"
        )
    return url


def use_worker_database(worker: str) -> str | None:
    """Point this pytest-xdist worker (``gw0``, ``gw1``...) at a database of its own,
    ``<db>_<worker>``, created on first use: the tests empty and refill their database, so
    two workers must never share one. Rewrites the environment, so that the subprocesses
    tests start inherit it; the new URL, or None when no server is configured."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        return None
    if not re.fullmatch(r"gw[0-9]+", worker):
        raise ValueError(f"PYTEST_XDIST_WORKER={worker!r}: expected gw<N>, as pytest-xdist names")
    # The driver imported before the loop starts, not inside it: the import's tenth of a
    # second on the loop would print dev mode's slow-step warning into the run's output.
    import asyncpg  # noqa: F401

    os.environ[POSTGRES_URL_ENV] = asyncio.run(sibling_database(url, f"_{worker}"))
    return os.environ[POSTGRES_URL_ENV]


async def sibling_database(url: str, suffix: str) -> str:
    """The URL of database ``<url's database><suffix>`` on the same server, created if it
    does not exist yet."""
    import asyncpg  # the postgres extra

    target = make_url(url)
    name = f"{target.database}{suffix}"
    admin = await asyncpg.connect(
        target.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return target.set(database=name).render_as_string(False)


async def reset_postgres(url: str) -> None:
    import asyncpg  # the postgres extra

    url = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.ObjectNotInPrerequisiteStateError:
        # An outage test (tests/storage.py) that was killed mid-outage left the database
        # closed to connections: open it again, or every later run would fail here.
        await _reopen_postgres(url)
        conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {_TABLES} CASCADE")
    finally:
        await conn.close()


async def _reopen_postgres(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = await asyncpg.connect(target.set(database="postgres").render_as_string(False))
    try:
        await admin.execute(f'ALTER DATABASE "{target.database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def admin_fetch(url: str, *statements: str) -> list[Any]:
    """The rows of each of ``statements``, run on a connection of the test's own."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [await conn.fetch(sql) for sql in statements]
    finally:
        await conn.close()


def count_queries(monkeypatch: Any) -> list[Any]:
    """The statements every PostgreSQL read runs from now on, on either executor, as a
    list that grows as they run (``monkeypatch``: the test's fixture, which undoes it)."""
    from healthchain.tracking._executors import CoreExecutor
    from healthchain.tracking._pg_executor import PgExecutor

    queries: list[Any] = []
    for executor in (PgExecutor, CoreExecutor):
        query = executor.query

        def counted(self: Any, stmt: Any, *args: Any, query: Any = query) -> Any:
            queries.append(stmt)
            return query(self, stmt, *args)

        monkeypatch.setattr(executor, "query", counted)
    return queries
