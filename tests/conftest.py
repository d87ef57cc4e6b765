"""Fixtures shared by the whole suite: the anyio backend, a blocking-call detector, storage.

Only fixtures live here; the helpers tests import are the ``helpers`` package.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from helpers.postgres import postgres_url, reset_postgres, use_worker_database
from helpers.shared import make_shared_storage
from helpers.storage import Storage

from healthchain.tracking import _backends, _sqlite_thread


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``, as nox runs the suite), each worker its own database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        use_worker_database(worker)


@pytest.fixture
def anyio_backend() -> str:
    """SQLAlchemy's asyncio extension needs asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which a blocking call runs on an event loop's thread."""
    with blockbuster_ctx() as bb:
        # asyncpg's connect looks for ~/.pgpass and ~/.postgresql certificates on disk:
        # a few stats per new pooled connection, inside asyncpg itself; nothing of ours.
        for function in bb.functions.values():
            function.can_block_in("asyncpg/connect_utils.py", {"_parse_connect_dsn_and_args"})
        yield bb


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file under the test's tmp dir (not yet created)."""
    return tmp_path / "experiments.db"


@pytest.fixture
def storage_uri(db_path: Path) -> str:
    """The storage URI as users write it."""
    return f"sqlite:///{db_path}"


@pytest.fixture
async def postgres_uri() -> str:
    """The real PostgreSQL server, emptied of healthchain's tables."""
    url = postgres_url()
    await reset_postgres(url)
    return url


@pytest.fixture(params=["driver", "core"])
def pg_uri(
    request: pytest.FixtureRequest, postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The real PostgreSQL server, written two ways: ``driver`` (asyncpg's connection,
    ``_pg_executor`` and the direct path) and ``core`` (``_backends.DRIVER_EXECUTOR``
    False: ``Connection.execute``, as any other driver runs)."""
    if request.param == "core":
        monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    return postgres_uri


@pytest.fixture(params=["sqlite", "sqlite-run_sync", "postgresql"])
async def any_storage_uri(
    request: pytest.FixtureRequest, storage_uri: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The same test on a SQLite file and on the real PostgreSQL server (emptied first).

    ``sqlite-run_sync`` runs SQLite through the public fallback of ``_sqlite_thread`` (as
    if aiosqlite had renamed the internals it uses), so that path is tested too.
    """
    if request.param == "sqlite-run_sync":
        monkeypatch.setattr(_sqlite_thread, "ONE_HOP", False)
    if request.param.startswith("sqlite"):
        return storage_uri
    url = postgres_url()
    await reset_postgres(url)
    return url


@pytest.fixture
def sqlite_storage(db_path: Path) -> Storage:
    """A SQLite file with a plain-SQL side door, for what only SQLite can hold."""
    return Storage("sqlite", f"sqlite:///{db_path}", db_path)


@pytest.fixture
def postgres_storage() -> Storage:
    """The real PostgreSQL server (emptied first) with a plain-SQL side door."""
    url = postgres_url()
    asyncio.run(reset_postgres(url))
    return Storage("postgresql", url)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request: pytest.FixtureRequest, db_path: Path) -> Storage:
    """Like ``any_storage_uri``, with a plain-SQL side door into the same database.

    A plain fixture, so sync tests (the sandbox's) can use it too.
    """
    if request.param == "sqlite":
        return Storage("sqlite", f"sqlite:///{db_path}", db_path)
    url = postgres_url()
    asyncio.run(reset_postgres(url))
    return Storage("postgresql", url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Storage:
    """An empty database for data a module records once and its tests only read, on each
    backend; no per-test reset touches it (see ``helpers.shared``)."""
    return make_shared_storage(request.param, tmp_path_factory.mktemp("shared"))
