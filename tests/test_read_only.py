"""Reading needs read access only: a database on a read-only file system, or a file this
process cannot write, can be listed, shown, exported and served; nothing reading it
writes or migrates it.

The suite runs as root, whom file modes do not stop, so the read-only cases are real
read-only mounts (a tmpfs remounted read-only; a file bind-mounted read-only onto itself),
undone when each test ends.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from helpers.dashboard import dashboard_client
from helpers.storage import Storage
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from healthchain.cli import app
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentStatus,
    ExperimentTracker,
    StorageError,
)
from healthchain.tracking._config import resolve_storage_uri
from healthchain.tracking._migrate import load_scripts, run_migrations

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"mount {' '.join(args)}: {done.stderr.strip()} (needs root)"


def _umount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _record(storage_uri: str) -> dict[str, str]:
    """Two finished runs, written and closed cleanly (the file is left in WAL mode)."""
    with ExperimentTracker(storage_uri, project_name="shared") as tracker:
        with tracker.track("first-run", tags={"model": "zephyr"}) as first:
            pass
        failed = tracker.start_experiment("second-run", tags={"model": "llama"})
        tracker.end_experiment(failed, ExperimentStatus.FAILED, error="ValueError: bad")
    return {"first": first, "failed": failed}


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Copies a database into a folder, then mounts that folder read-only."""
    folder = tmp_path / "shared"
    folder.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder))

    def publish(database: Path) -> Path:
        copy = folder / database.name
        shutil.copy(database, copy)
        _mount("-o", "remount,ro", str(folder))
        return copy

    try:
        yield publish
    finally:
        _umount(folder)


@pytest.fixture
def read_only_file(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """Makes a database file mode 0444 and unwritable even by root, its folder writable."""
    sealed: list[Path] = []

    def seal(database: Path) -> Path:
        database.chmod(0o444)
        _mount("--bind", str(database), str(database))
        sealed.append(database)
        _mount("-o", "remount,bind,ro", str(database))
        return database

    try:
        yield seal
    finally:
        for database in sealed:
            _umount(database)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder, and a read-only view of it (bind-mounted): one writer, other readers."""
    folder, view = tmp_path / "results", tmp_path / "view"
    folder.mkdir()
    view.mkdir()
    _mount("--bind", str(folder), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield folder, view
    finally:
        _umount(view)


@pytest.fixture(params=["read-only folder", "read-only file"])
def shared(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    read_only_folder: Callable[[Path], Path],
    read_only_file: Callable[[Path], Path],
) -> tuple[str, dict[str, str]]:
    """A recorded database this process can read but not write, and the ids in it."""
    source = tmp_path / "results.db"
    ids = _record(f"sqlite:///{source}")
    assert not Path(f"{source}-wal").exists()  # a clean close: the WAL was checkpointed
    assert source.read_bytes()[18:20] == b"\x02\x02"  # still a WAL-mode file
    seal = read_only_folder if request.param == "read-only folder" else read_only_file
    database = seal(source)
    with pytest.raises(OSError, match="Read-only file system"):  # root or not
        database.open("r+b").close()
    return f"sqlite:///{database}", ids


def test_cli_lists_shows_and_exports_what_it_cannot_write(
    shared: tuple[str, dict[str, str]],
) -> None:
    uri, ids = shared
    listed = run("experiments", "list", "--storage-uri", uri, "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert [e["id"] for e in json.loads(listed.stdout)] == [ids["failed"], ids["first"]]
    table = run("experiments", "list", "--storage-uri", uri)
    assert table.exit_code == 0 and "first-run" in table.stdout, table.output
    shown = run("experiments", "show", ids["failed"], "--storage-uri", uri, "--format", "json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["error"] == "ValueError: bad"
    exported = run("experiments", "export", "-o", "-", "--format", "jsonl", "--storage-uri", uri)
    assert exported.exit_code == 0, exported.output
    assert len(exported.stdout.splitlines()) == 2


def test_cli_writers_refuse_what_they_cannot_write_in_one_line(
    shared: tuple[str, dict[str, str]],
) -> None:
    uri, ids = shared
    path = uri.removeprefix("sqlite:///")
    for command in (
        ("experiments", "reap"),
        ("experiments", "delete", ids["first"], "--yes"),
        ("db", "upgrade"),
    ):
        assert_one_line_error(run(*command, "--storage-uri", uri), path, "not writable")


def test_tracker_reads_read_only_and_writers_get_a_storage_error(
    shared: tuple[str, dict[str, str]],
) -> None:
    uri, ids = shared
    with ExperimentTracker(uri, read_only=True) as reader:
        assert [e.name for e in reader.list_experiments()] == ["second-run", "first-run"]
        assert reader.get_experiment(ids["first"]).status is ExperimentStatus.COMPLETED
        assert reader.request_stats(ids["first"]).count == 0
        with pytest.raises(StorageError, match="read_only=True"):
            reader.start_experiment("nope")
    with pytest.raises(StorageError, match="not writable") as caught:
        ExperimentTracker(uri)
    assert uri.removeprefix("sqlite:///") in str(caught.value)


@pytest.fixture
async def dashboard(shared: tuple[str, dict[str, str]]) -> AsyncIterator[httpx.AsyncClient]:
    uri, _ = shared
    async with dashboard_client(uri) as c:
        yield c


@pytest.mark.anyio
async def test_dashboard_serves_what_it_cannot_write(
    dashboard: httpx.AsyncClient, shared: tuple[str, dict[str, str]]
) -> None:
    _, ids = shared
    listing = await dashboard.get("/")
    assert listing.status_code == 200, listing.text
    assert "first-run" in listing.text and "second-run" in listing.text
    detail = await dashboard.get(f"/experiments/{ids['failed']}")
    assert detail.status_code == 200, detail.text
    assert "ValueError: bad" in detail.text


def test_uncheckpointed_log_in_a_read_only_folder_is_a_clear_error(
    tmp_path: Path, read_only_folder: Callable[[Path], Path]
) -> None:
    source = tmp_path / "live.db"
    _record(f"sqlite:///{source}")
    writer = sqlite3.connect(source)  # a writer still open: its commits sit in the -wal
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE experiments SET name = 'renamed'")
        writer.commit()
        shutil.copy(Path(f"{source}-wal"), tmp_path / "shared" / "live.db-wal")
        database = read_only_folder(source)
    finally:
        writer.close()
    uri = f"sqlite:///{database}"
    assert_one_line_error(run("experiments", "list", "--storage-uri", uri), "live.db-wal", "log")


def test_reader_of_a_read_only_view_sees_a_writer_that_starts_later(
    read_only_view: tuple[Path, Path],
) -> None:
    folder, view = read_only_view
    _record(f"sqlite:///{folder / 'runs.db'}")  # closed cleanly: no -shm left beside it
    with ExperimentTracker(f"sqlite:///{view / 'runs.db'}", read_only=True) as reader:
        assert len(reader.list_experiments()) == 2
        with ExperimentTracker(f"sqlite:///{folder / 'runs.db'}") as writer:
            writer.start_experiment("while-watched")  # a writer at work: -wal and -shm
            assert Path(f"{folder / 'runs.db'}-shm").exists()
            assert reader.list_experiments()[0].name == "while-watched"
            writer.start_experiment("and-another")
            assert len(reader.list_experiments()) == 4
        assert len(reader.list_experiments()) == 4


# --- a schema that is behind: readers never migrate it ------------------------------------


async def _migrate_to(uri: str, revision: str) -> None:
    # Building the engine resolves a SQLite path; loading the scripts reads files.
    engine = await asyncio.to_thread(create_async_engine, resolve_storage_uri(uri).url)
    scripts = await asyncio.to_thread(load_scripts)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_migrations, scripts, None, revision)
    finally:
        await engine.dispose()


def test_reading_a_schema_that_is_behind_says_to_upgrade_and_leaves_it(
    any_storage: Storage,
) -> None:
    asyncio.run(_migrate_to(any_storage.uri, "0001"))
    with pytest.raises(StorageError, match=r"older schema.*'0001'.*healthchain db upgrade"):
        ExperimentTracker(any_storage.uri, read_only=True)
    assert_one_line_error(
        run("experiments", "list", "--storage-uri", any_storage.uri), "healthchain db upgrade"
    )
    assert any_storage.query("SELECT version_num FROM alembic_version") == [("0001",)]
    assert not any_storage.has_table("requests")  # added by a later revision: not migrated

    # A writer upgrades on open, as before.
    with ExperimentTracker(any_storage.uri) as writer:
        writer.start_experiment("after-upgrade")
    with ExperimentTracker(any_storage.uri, read_only=True) as reader:
        assert [e.name for e in reader.list_experiments()] == ["after-upgrade"]


def test_reading_a_sqlite_schema_that_is_behind_leaves_the_file_byte_for_byte(
    db_path: Path, storage_uri: str
) -> None:
    asyncio.run(_migrate_to(storage_uri, "0001"))
    before = db_path.read_bytes(), db_path.stat().st_mtime_ns
    with pytest.raises(StorageError, match="healthchain db upgrade"):
        ExperimentTracker(storage_uri, read_only=True)
    assert_one_line_error(
        run("experiments", "list", "--storage-uri", storage_uri), "healthchain db upgrade"
    )
    assert (db_path.read_bytes(), db_path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]


def test_reading_an_empty_database_says_there_is_nothing_there(any_storage: Storage) -> None:
    if any_storage.path is not None:
        any_storage.path.touch()
    assert_one_line_error(
        run("experiments", "list", "--storage-uri", any_storage.uri),
        "no healthchain experiments",
        "healthchain db upgrade",
    )
    assert not any_storage.has_table("experiments")


@pytest.mark.anyio
async def test_read_only_async_tracker_has_no_heartbeat_and_refuses_writes(
    storage_uri: str,
) -> None:
    await asyncio.to_thread(_record, storage_uri)
    async with AsyncExperimentTracker(storage_uri, read_only=True) as reader:
        assert len(await reader.list_experiments()) == 2
        tasks = {t.get_name() for t in asyncio.all_tasks()}
        assert "healthchain-heartbeat" not in tasks
        for write in (
            reader.reap_stale(),
            reader.delete_experiments([]),
            reader.end_experiment("x"),
        ):
            with pytest.raises(StorageError, match="read_only=True"):
                await write
        assert "read-only" in repr(reader)
