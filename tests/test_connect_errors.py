"""Every failure to connect, on the real PostgreSQL server, is the library's own error:
from the async and sync trackers, ``upgrade_database`` and the command line (one line on
stderr, a non-zero exit), naming the database with its password masked and what to
check. Failures waiting cannot cure are final at once; an unreachable server stays an
outage the writer retries (tests/test_outages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import anyio
import pytest
from helpers.errors import chain_text
from helpers.postgres import postgres_url, reset_postgres
from sqlalchemy.engine import URL, make_url

from healthchain.tracking import (
    AsyncExperimentTracker,
    ConfigurationError,
    ExperimentTracker,
    StorageError,
    TrackerError,
    upgrade_database,
)

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret-pw"
"""In every URL below; the test server trusts local connections, so it is never checked."""
QUERY_PASSWORD = "q-s3cret-pw"
FAST = 15.0
"""Seconds within which a failure must be reported: far less than the outage bound (60 s)."""


def _with(**query: str) -> Callable[[URL], URL]:
    return lambda url: url.update_query_dict({"password": QUERY_PASSWORD, **query})


# id: (how the working URL is spoiled, the error, what its message must say)
CASES: dict[str, tuple[Callable[[URL], URL], type[TrackerError], tuple[str, ...]]] = {
    "no-such-database": (
        lambda url: url.set(database="hc_no_such_database"),
        StorageError,
        ("hc_no_such_database", "does not exist", "create that database"),
    ),
    "no-such-role": (
        lambda url: url.set(username="hc_no_such_role"),
        StorageError,
        ('role "hc_no_such_role" does not exist', "check the user name and password"),
    ),
    "bad-sslmode": (
        _with(sslmode="bogus"),
        StorageError,
        ("ssl=bogus", "check the options after '?'"),
    ),
    "unknown-option": (
        _with(bogus_option="1"),
        StorageError,
        ("bogus_option", "check the options after '?'"),
    ),
    "option-value-refused": (
        _with(timeout="soon"),
        StorageError,
        ("timeout=soon", "check the options after '?'"),
    ),
    "option-not-a-number": (
        _with(prepared_statement_cache_size="many"),
        ConfigurationError,
        ("prepared_statement_cache_size=many", "driver cannot take"),
    ),
    "port-out-of-range": (
        lambda url: url.set(port=99999),
        ConfigurationError,
        (":99999/", "from 1 to 65535"),
    ),
    "nothing-listens": (
        lambda url: url.set(host="127.0.0.1", port=1),
        StorageError,
        ("127.0.0.1:1/", "ConnectionRefusedError", "check that the database server is running"),
    ),
}


def _uri(case: str) -> str:
    spoil = CASES[case][0]
    url = spoil(make_url(postgres_url()).set(password=PASSWORD))
    return url.render_as_string(hide_password=False)


def _check(exc: BaseException, case: str) -> None:
    _, error, needles = CASES[case]
    assert isinstance(exc, error), repr(exc)
    message = str(exc)
    for needle in needles:
        assert needle in message, message
    assert "***" in message  # the URL is named, masked
    for secret in (PASSWORD, QUERY_PASSWORD):
        assert secret not in chain_text(exc)


@pytest.mark.parametrize("case", CASES)
async def test_every_entry_point_raises_the_library_error(case: str) -> None:
    uri = _uri(case)

    async def open_async() -> None:
        async with AsyncExperimentTracker(uri, outage_timeout=60) as tracker:
            await tracker.list_experiments()

    def open_sync() -> None:
        ExperimentTracker(uri, outage_timeout=60).close()

    attempts: list[Callable[[], object]] = [
        open_async,
        lambda: upgrade_database(uri),
        lambda: anyio.to_thread.run_sync(open_sync),
    ]
    for attempt in attempts:
        started = time.monotonic()
        with pytest.raises(TrackerError) as info:
            await attempt()  # type: ignore[misc]
        assert time.monotonic() - started < FAST
        _check(info.value, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", [("experiments", "list"), ("db", "upgrade")], ids=" ".join)
def test_the_command_line_says_it_in_one_line(case: str, command: tuple[str, ...]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHAIN_STORAGE_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "healthchain.cli", *command, "--storage-uri", _uri(case)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in CASES[case][2]:
        assert needle in lines[0]
    assert PASSWORD not in done.stderr and QUERY_PASSWORD not in done.stderr


async def test_writes_fail_at_once_when_connecting_cannot_succeed_again() -> None:
    # A role that may no longer log in, mid-run: not an outage to wait out for 60 s.
    import asyncpg

    admin_url = postgres_url()
    await reset_postgres(admin_url)
    async with AsyncExperimentTracker(admin_url):
        pass  # the schema, created by its owner
    role = f"hc_role_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        uri = make_url(admin_url).set(username=role, password=PASSWORD)
        async with AsyncExperimentTracker(
            uri.render_as_string(hide_password=False), outage_timeout=60
        ) as tracker:
            experiment_id = await tracker.start_experiment("locked-out")
            await admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            started = time.monotonic()
            with pytest.raises(StorageError) as ended:
                await tracker.end_experiment(experiment_id)
            with pytest.raises(StorageError) as listed:
                await tracker.list_experiments()
            assert time.monotonic() - started < FAST
        for info in (ended, listed):
            assert "is not permitted to log in" in str(info.value)
            assert "check the user name and password" in str(info.value)
            assert PASSWORD not in chain_text(info.value)
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_a_server_refusing_tls_is_final_not_an_outage() -> None:
    import asyncpg

    admin = await asyncpg.connect(postgres_url().replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if await admin.fetchval("SHOW ssl") == "on":
            pytest.skip("this server accepts TLS")
    finally:
        await admin.close()
    uri = make_url(postgres_url()).set(password=PASSWORD).update_query_dict({"sslmode": "require"})
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        await upgrade_database(uri.render_as_string(hide_password=False))
    assert time.monotonic() - started < FAST
    assert "rejected SSL upgrade" in str(info.value)
    assert "check the URL's ssl option" in str(info.value)
    assert PASSWORD not in chain_text(info.value)
