"""Scratch PostgreSQL databases for the benchmarks: one fresh database per measurement.

A benchmark run is pointed at a *server* (``HEALTHCHAIN_BENCH_POSTGRES_URL`` or
``--postgres URL``, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``: any database
the user may connect to, used only to create and drop others). Each run picks a prefix
``hcbench_<12 hex>_``; each measured subprocess creates its own databases under it
(:func:`fresh_database`) and drops them when done, and the runner drops whatever is left
under the prefix at the end (:func:`drop_prefixed`), so a killed subprocess leaves nothing
behind. Nothing outside ``hcbench_*`` is ever touched.

Stdlib only at import; ``asyncpg`` (the postgres extra) is imported when used.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "POSTGRES_URL_ENV",
    "analyze",
    "database_url",
    "drop_prefixed",
    "fresh_database",
    "new_prefix",
    "pg_database",
    "server_url",
]

POSTGRES_URL_ENV = "HEALTHCHAIN_BENCH_POSTGRES_URL"
_PREFIX = re.compile(r"hcbench_[0-9a-f]{12}_\Z")


def server_url(given: str | None) -> str | None:
    """The server URL to use (``given``, else the environment), checked; None if neither."""
    url = given or os.environ.get(POSTGRES_URL_ENV) or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise SystemExit(
            f"the PostgreSQL URL must start with postgresql://, got scheme {parts.scheme!r}: "
            f"set {POSTGRES_URL_ENV} or --postgres to e.g. "
            "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    if not parts.hostname:
        raise SystemExit(f"the PostgreSQL URL names no host: give one, e.g. {_example()}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def _example() -> str:
    return "postgresql://postgres@127.0.0.1:5432/postgres"


def new_prefix() -> str:
    """A prefix for the databases of one benchmark run."""
    return f"hcbench_{uuid.uuid4().hex[:12]}_"


def database_url(server: str, name: str) -> str:
    """``server`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.match(prefix):
        raise ValueError(f"bench database prefix {prefix!r} is not hcbench_<12 hex>_")


async def _admin(server: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(server)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def analyze(url: str | None) -> None:
    """``ANALYZE`` the database at ``url`` (None: a SQLite run, nothing to do).

    The read benchmarks query right after writing thousands of rows. A live database's
    autovacuum analyzes a table once 50 rows + 10 % of it have changed (within a minute by
    default); a fresh one read at once has no statistics yet, and the planner guesses one
    row per join (a nested loop and a Memoize with no hits: 4.1 against 1.9 ms of server
    time for the metric filter + order over 2,000 runs, PostgreSQL 15). Both sides of each
    comparison are analyzed alike, so each reads on the plans it would meet in use.
    """
    if url:
        asyncio.run(_admin(url.replace("postgresql+psycopg2://", "postgresql://", 1), "ANALYZE"))


@contextmanager
def fresh_database(server: str, prefix: str, label: str) -> Iterator[str]:
    """A new empty database ``<prefix><label>_<8 hex>`` for the block; its URL. Dropped after."""
    _check_prefix(prefix)
    if not re.fullmatch(r"[a-z0-9_]{1,20}", label):
        raise ValueError(f"database label {label!r}: use 1-20 of a-z, 0-9, _")
    name = f"{prefix}{label}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield database_url(server, name)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def drop_prefixed(server: str, prefix: str) -> list[str]:
    """Drop every database whose name starts with ``prefix`` (one run's); their names."""
    _check_prefix(prefix)

    async def drop() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(server)
        try:
            names = [
                r["datname"]
                for r in await conn.fetch(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
                )
            ]
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return names
        finally:
            await conn.close()

    return asyncio.run(drop())


@contextmanager
def pg_database(opts: dict[str, Any], label: str) -> Iterator[str | None]:
    """A measured subprocess's database: a fresh one on ``opts["postgres"]`` (made under
    ``opts["prefix"]``, dropped after), or None when it runs on SQLite."""
    if not opts.get("postgres"):
        yield None
        return
    with fresh_database(opts["postgres"], opts["prefix"], label) as url:
        yield url
