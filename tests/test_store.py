"""The aiosqlite internals the SQLite backend relies on, and PostgreSQL upgrades."""

from __future__ import annotations

from typing import Any

import aiosqlite
import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from healthchain.tracking import AsyncExperimentTracker, _sqlite_thread, upgrade_database
from healthchain.tracking._batch import describe_ops
from healthchain.tracking._config import resolve_storage_uri
from healthchain.tracking._migrate import current_revision, load_scripts, run_migrations
from healthchain.tracking._operations import BeatOp, DeleteOp, RequestsOp, StartOp
from healthchain.tracking._schema import HEAD_REVISION, metadata
from healthchain.tracking._transient import is_transient
from healthchain.tracking._update_ops import EndOp

pytestmark = pytest.mark.anyio


def test_aiosqlite_still_has_the_internals_of_the_one_hop_path() -> None:
    # Without them the SQLite backend falls back to run_sync (slower, still correct: the
    # any_storage_uri fixture's "sqlite-run_sync" runs the tracker tests that way); this
    # says when an aiosqlite release has taken the fast path away.
    assert _sqlite_thread.ONE_HOP, f"aiosqlite {aiosqlite.__version__} renamed _execute/_conn"


async def test_postgres_behind_head_is_upgraded_under_the_advisory_lock(
    postgres_uri: str,
) -> None:
    any_storage_uri = postgres_uri
    engine = create_async_engine(resolve_storage_uri(any_storage_uri).url)
    try:
        scripts = await anyio.to_thread.run_sync(load_scripts)
        async with engine.begin() as conn:
            await conn.run_sync(run_migrations, scripts, None, "0001")
        async with AsyncExperimentTracker(any_storage_uri) as tracker:
            experiment_id = await tracker.start_experiment()
            assert (await tracker.request_stats(experiment_id)).count == 0
        async with engine.connect() as conn:
            assert await conn.run_sync(current_revision) == HEAD_REVISION
            # the upgraded schema is exactly the declared one (json columns, not jsonb)
            assert await conn.run_sync(_schema_drift) == []
    finally:
        await engine.dispose()


async def test_upgrade_database_upgrades_postgres_without_statement_timeouts(
    postgres_uri: str,
) -> None:
    engine = create_async_engine(resolve_storage_uri(postgres_uri).url)
    try:
        scripts = await anyio.to_thread.run_sync(load_scripts)
        async with engine.begin() as conn:
            await conn.run_sync(run_migrations, scripts, None, "0001")
    finally:
        await engine.dispose()
    assert await upgrade_database(postgres_uri) == ("0001", HEAD_REVISION)
    assert await upgrade_database(postgres_uri) == (HEAD_REVISION, HEAD_REVISION)


def _schema_drift(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("ConnectionDoesNotExistError", True),  # 08003: the connection went away
        ("AdminShutdownError", True),  # 57P01: pg_terminate_backend, a server stop
        ("CannotConnectNowError", True),  # 57P03: the server is starting up
        ("TooManyConnectionsError", True),  # 53300
        ("SerializationError", True),  # 40001: retry the transaction
        ("DeadlockDetectedError", True),  # 40P01
        ("ReadOnlySQLTransactionError", True),  # 25006: a standby, mid-failover
        ("UniqueViolationError", False),  # 23505: about the operation, final
        ("UndefinedTableError", False),  # 42P01: a broken schema, final
        ("InvalidPasswordError", False),  # 28P01: retrying cannot fix credentials
    ],
)
def test_postgres_errors_are_retried_only_when_storage_may_come_back(
    error: str, retried: bool
) -> None:
    import asyncpg

    assert is_transient(getattr(asyncpg.exceptions, error)("from the server")) is retried


def test_a_database_closed_to_connections_is_retried_but_other_55000s_are_not() -> None:
    import asyncpg

    closed = 'database "test" is not currently accepting connections'
    state = asyncpg.exceptions.ObjectNotInPrerequisiteStateError
    assert is_transient(state(closed))
    assert not is_transient(state("cannot drop the currently open database"))


def test_what_was_not_recorded_is_said_in_words_with_the_experiments() -> None:
    starts = [StartOp({"id": f"e{i}"}, [], []) for i in range(7)]
    ops = [*starts, RequestsOp("e0", [{}, {}, {}]), RequestsOp("e1", [{}]), BeatOp([])]
    assert describe_ops(ops) == (
        "7 experiment starts, 4 request records, 1 heartbeat "
        "(experiments e0, e1, e2, e3, e4 and 2 more)"
    )
    assert describe_ops([EndOp({"b_id": "e9"})]) == "1 experiment end (experiment e9)"
    assert describe_ops([DeleteOp(["a", "b"])]) == "2 experiment deletions (experiments a, b)"
