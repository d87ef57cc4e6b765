"""Storage outages injected for real: a SQLite lock held past the busy timeout; a
PostgreSQL database closed to connections with its sessions killed, or holding a lock
it never grants. Writes wait and land, or fail loudly within the outage bound."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
from helpers.storage import Storage, take_away
from sqlalchemy.engine import make_url

from healthchain.tracking import AsyncExperimentTracker, ExperimentStatus, StorageError

pytestmark = [pytest.mark.anyio, pytest.mark.stress]

OUTAGE_SECONDS = 1.0
"""Twenty SQLite busy timeouts; on PostgreSQL, many refused reconnects."""


@pytest.fixture
def unavailable(any_storage: Storage) -> Storage:
    """A backend with short per-attempt waits, so an outage spans many retries."""
    return any_storage.with_short_waits()


async def test_writes_wait_out_an_outage(
    unavailable: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="healthchain.tracking")
    async with AsyncExperimentTracker(unavailable.uri) as tracker:
        first = await tracker.start_experiment("before")
        async with take_away(unavailable):
            pending = [
                asyncio.create_task(tracker.start_experiment(f"during{i}")) for i in range(5)
            ]
            ending = asyncio.create_task(tracker.end_experiment(first))
            await asyncio.sleep(OUTAGE_SECONDS)
            assert not any(t.done() for t in [*pending, ending])  # waiting, not failed
        ids = await asyncio.gather(*pending)
        await ending
        experiments = {e.name: e for e in await tracker.list_experiments()}
    assert set(experiments) == {"before"} | {f"during{i}" for i in range(5)}
    assert experiments["before"].status is ExperimentStatus.COMPLETED
    assert {experiments[f"during{i}"].id for i in range(5)} == set(ids)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unavailable" in m and "retrying" in m for m in messages)
    assert any("is back after" in m for m in messages)


async def test_storage_that_never_returns_fails_loudly_and_recovers_after(
    unavailable: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="healthchain.tracking")
    async with AsyncExperimentTracker(unavailable.uri, outage_timeout=0.5) as tracker:
        kept = await tracker.start_experiment("kept")
        async with take_away(unavailable):
            with pytest.raises(
                StorageError,
                match=r"not recorded: 1 experiment start \(experiment [0-9a-f-]{36}\)$",
            ) as info:
                await tracker.start_experiment("lost")
        assert "unavailable for over 0.5 s" in str(info.value)
        assert any("not recorded: 1 experiment start" in r.getMessage() for r in caplog.records)
        # storage is back: the tracker goes on working
        await tracker.end_experiment(kept)
        names = [e.name for e in await tracker.list_experiments()]
    assert names == ["kept"]


async def test_queue_bound_refuses_writes_beyond_it(unavailable: Storage) -> None:
    async with AsyncExperimentTracker(unavailable.uri, max_queued_writes=3) as tracker:
        await tracker.list_experiments()
        async with take_away(unavailable):
            first = asyncio.create_task(tracker.start_experiment("in-flight"))
            await asyncio.sleep(0.2)  # the writer holds it, retrying
            queued = [asyncio.create_task(tracker.start_experiment(f"q{i}")) for i in range(5)]
            await asyncio.sleep(0.1)
            refused = [t for t in queued if t.done()]
            assert len(refused) == 2
            for task in refused:
                with pytest.raises(StorageError, match="3 writes are already queued"):
                    task.result()
        await first
        accepted = await asyncio.gather(*(t for t in queued if t not in refused))
        names = {e.name for e in await tracker.list_experiments()}
    assert len(accepted) == 3
    assert names == {"in-flight", "q0", "q1", "q2"}


async def test_a_postgres_server_that_stops_answering_is_given_up_on_in_time(
    postgres_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not refused, just never answered: a lock the tracker's statements wait on."""
    import asyncpg

    caplog.set_level(logging.ERROR, logger="healthchain.tracking")
    locked, release = anyio.Event(), anyio.Event()
    state = {"held": False}

    async def hold_lock() -> None:
        admin = await asyncpg.connect(postgres_uri)
        try:
            async with admin.transaction():
                await admin.execute("LOCK TABLE experiments IN ACCESS EXCLUSIVE MODE")
                state["held"] = True
                locked.set()
                # far beyond one statement's timeout (at least 5 s, whatever the bound)
                with anyio.move_on_after(30):
                    await release.wait()
                state["held"] = False
        finally:
            await admin.close()

    async with AsyncExperimentTracker(postgres_uri, outage_timeout=0.5) as tracker:
        kept = await tracker.start_experiment("kept")
        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_lock)
            await locked.wait()
            with pytest.raises(
                StorageError, match=rf"not recorded: 1 experiment end \(experiment {kept}\)$"
            ) as info:
                await tracker.end_experiment(kept)
            assert state["held"]  # given up while the server still had not answered
            release.set()
        assert "unavailable for over 0.5 s (TimeoutError" in str(info.value)  # after ~5 s
        assert any("not recorded: 1 experiment end" in r.getMessage() for r in caplog.records)
        await tracker.end_experiment(kept)  # the server answers again
        (experiment,) = await tracker.list_experiments()
    assert experiment.status is ExperimentStatus.COMPLETED


async def test_a_killed_postgres_connection_is_replaced(postgres_uri: str) -> None:
    import asyncpg

    async with AsyncExperimentTracker(postgres_uri) as tracker:
        first = await tracker.start_experiment("before")
        admin = await asyncpg.connect(postgres_uri)
        try:
            own = await admin.fetchval("SELECT pg_backend_pid()")
            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> $1",
                own,
            )
        finally:
            await admin.close()
        assert killed  # the tracker's connections are gone
        await tracker.end_experiment(first)
        second = await tracker.start_experiment("after")
        await tracker.end_experiment(second)
        experiments = await tracker.list_experiments()
    assert {e.name for e in experiments} == {"before", "after"}
    assert all(e.status is ExperimentStatus.COMPLETED for e in experiments)


async def test_outage_logs_never_show_the_password(
    postgres_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    caplog.set_level(logging.WARNING, logger="healthchain.tracking")
    # trust authentication ignores the password; it only has to stay out of every message
    uri = make_url(postgres_uri).set(password="s3cret-pw").render_as_string(hide_password=False)
    async with AsyncExperimentTracker(uri) as tracker:
        experiment_id = await tracker.start_experiment()
        admin = await asyncpg.connect(postgres_uri)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        await tracker.end_experiment(experiment_id)
        assert "s3cret-pw" not in repr(tracker)
    messages = [record.getMessage() for record in caplog.records]
    assert any("unavailable" in m for m in messages)  # the outage was logged ...
    assert all("s3cret-pw" not in m for m in messages)  # ... without the password
    assert any("***" in m for m in messages)
