"""Schema creation and migrations: fresh files, files that are behind, racing processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers.imports import import_threads
from helpers.storage import Storage
from sqlalchemy import create_engine, inspect

from healthchain.tracking import ExperimentStatus, ExperimentTracker, StorageError
from healthchain.tracking._migrate import load_scripts, run_migrations
from healthchain.tracking._schema import HEAD_REVISION, metadata

pytestmark = pytest.mark.stress

HERE = Path(__file__).parent
CHILD = str(HERE / "tracker_child.py")


def _migrate(path: Path, target: str = "head") -> None:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            run_migrations(conn, load_scripts(), None, target)
    finally:
        engine.dispose()


def _query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """The rows of one statement on the SQLite file at ``path``, committed (plain sqlite3)."""
    return Storage("sqlite", f"sqlite:///{path}", path).query(sql)


def _revisions(path: Path) -> list[object]:
    """The revisions the file at ``path`` is stamped with: one, when it is whole."""
    return [revision for (revision,) in _query(path, "SELECT version_num FROM alembic_version")]


def _schema(path: Path) -> tuple[list[object], dict[str, object]]:
    """Differences from the declared metadata, and the reflected tables, indexes, keys."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            inspector = inspect(conn)
            shape = {
                table: (
                    [
                        (c["name"], str(c["type"]), c["nullable"])
                        for c in inspector.get_columns(table)
                    ],
                    sorted(
                        (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                    ),
                    inspector.get_pk_constraint(table)["constrained_columns"],
                    sorted(str(fk["referred_table"]) for fk in inspector.get_foreign_keys(table)),
                    sorted(str(u["column_names"]) for u in inspector.get_unique_constraints(table)),
                )
                for table in inspector.get_table_names()
            }
    finally:
        engine.dispose()
    return diff, shape


def test_head_revision_constant_matches_the_migrations() -> None:
    config = Config()
    config.set_main_option("script_location", "healthchain.tracking:migrations")
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    path = tmp_path / "migrated.db"
    _migrate(path)
    diff, _ = _schema(path)
    assert diff == []
    assert _revisions(path) == [HEAD_REVISION]


def test_fresh_file_is_created_and_stamped_like_a_migrated_one(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    with ExperimentTracker(f"sqlite:///{fresh}"):
        pass
    migrated = tmp_path / "migrated.db"
    _migrate(migrated)
    fresh_diff, fresh_shape = _schema(fresh)
    assert fresh_diff == []
    assert fresh_shape == _schema(migrated)[1]
    assert _revisions(fresh) == [HEAD_REVISION]
    assert _query(fresh, "PRAGMA journal_mode") == [("wal",)]


def test_a_database_behind_head_is_upgraded_by_alembic_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _migrate(path, "0001")  # written before per-request records existed
    with ExperimentTracker(f"sqlite:///{path}") as tracker:
        experiment_id = tracker.start_experiment()
        assert tracker.request_stats(experiment_id).count == 0  # the new table is there
    diff, shape = _schema(path)
    assert diff == []
    assert "requests" in shape
    assert _revisions(path) == [HEAD_REVISION]


def test_a_database_from_a_newer_healthchain_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _migrate(path)
    _query(path, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StorageError, match=r"revision '9999'.*upgrade healthchain"):
        ExperimentTracker(f"sqlite:///{path}")
    assert _revisions(path) == ["9999"]


def test_processes_opening_one_fresh_database_at_once_do_not_race(
    any_storage: Storage, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.touch()
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, "open", any_storage.uri, str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(0.5)  # let every child import and reach the barrier
    barrier.unlink()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "ok"
    with ExperimentTracker(any_storage.uri) as tracker:
        experiments = tracker.list_experiments()
    assert len(experiments) == 8
    assert all(e.status is ExperimentStatus.COMPLETED for e in experiments)
    # one schema, created once: SQLite's write lock or PostgreSQL's advisory lock held
    assert any_storage.query("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
    for table in ("experiments", "experiment_tags", "pipeline_components", "requests"):
        assert any_storage.has_table(table), table
    if any_storage.path is not None:
        assert any_storage.query("PRAGMA integrity_check") == [("ok",)]


def test_upgrade_database_reports_the_revisions(tmp_path: Path) -> None:
    import asyncio

    from healthchain.tracking import upgrade_database

    old = tmp_path / "old.db"
    _migrate(old, "0001")
    assert asyncio.run(upgrade_database(f"sqlite:///{old}")) == ("0001", HEAD_REVISION)
    assert asyncio.run(upgrade_database(f"sqlite:///{old}")) == (HEAD_REVISION, HEAD_REVISION)
    fresh = tmp_path / "fresh.db"
    assert asyncio.run(upgrade_database(f"sqlite:///{fresh}")) == (None, HEAD_REVISION)
    with pytest.raises(StorageError, match=r"missing/x\.db"):
        asyncio.run(upgrade_database(f"sqlite:///{tmp_path / 'missing' / 'x.db'}"))


# A fresh interpreter, so that the driver is not imported yet: the thread importing it
# is recorded, and the loop's own.
_UPGRADE = """
from healthchain.tracking import StorageError, upgrade_database

async def main():
    try:
        await upgrade_database(sys.argv[2])
    except StorageError:
        pass  # nothing listens there: the import is what is measured
    return threading.get_ident()
"""


def test_upgrade_database_imports_the_driver_off_the_loop() -> None:
    # Importing asyncpg takes a tenth of a second of disk reads and CPU, once a process.
    imported, on_loop = import_threads(_UPGRADE, "asyncpg", "postgresql://u@127.0.0.1:1/db")
    assert imported
    assert not on_loop, "asyncpg was imported on the loop's thread"


def _downgrade_to_0003(path: Path) -> None:
    """Undo revision 0004 the way Alembic would, leaving every older row in place."""
    from alembic.operations import Operations

    scripts = load_scripts()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            context = MigrationContext.configure(conn, opts={"render_as_batch": True})
            with Operations.context(context):
                scripts.get_revision("0004").module.downgrade()
            context.stamp(scripts, "0003")
    finally:
        engine.dispose()


def _rows(path: Path, tables: tuple[str, ...]) -> dict[str, list[tuple[object, ...]]]:
    return {t: sorted(_query(path, f"SELECT * FROM {t}"), key=repr) for t in tables}


def test_a_file_at_revision_0003_upgrades_in_place_keeping_every_row(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from healthchain.tracking import RequestRecord

    path = tmp_path / "release-0003.db"
    uri = f"sqlite:///{path}"
    with ExperimentTracker(uri, tags={"site": "north"}) as tracker:
        done = tracker.start_experiment(
            "done",
            tags={"model": {"name": "zephyr", "size": [7, "b"]}},
            pipeline_config={"max_tokens": 512},
            components=[{"name": "llm", "type": "ChatModel", "stage": "inference"}],
        )
        start = datetime(2026, 1, 1, tzinfo=UTC)
        tracker.log_requests(
            done,
            [
                RequestRecord(i, start, 10.5 + i, 200 if i else None, "e" if i == 0 else None)
                for i in range(3)
            ],
        )
        tracker.end_experiment(done, "FAILED", error="boom")
        running = tracker.start_experiment("running")
    _downgrade_to_0003(path)
    old_tables = ("experiments", "experiment_tags", "pipeline_components", "requests")
    before = _rows(path, old_tables)
    assert [len(before[t]) for t in old_tables] == [2, 3, 1, 3]
    assert not {"metric_points", "latest_metrics", "params"} & set(_schema(path)[1])

    with ExperimentTracker(uri) as tracker:  # a writer upgrades on open
        tracker.log_metric(done, "acc", 0.5)
        tracker.log_params(running, {"p": 1})
        assert tracker.get_experiment(done).error == "boom"
        assert [r.latency_ms for r in tracker.list_requests(done)] == [10.5, 11.5, 12.5]
        assert [p.value for p in tracker.get_metric_history(done, "acc")] == [0.5]

    after = _rows(path, old_tables)
    # the new columns are NULL in the old rows: requests.scores, experiments.files_dir
    assert after["requests"] == [(*row, None) for row in before["requests"]]
    assert after["experiments"] == [(*row, None) for row in before["experiments"]]
    for table in old_tables[1:-1]:
        assert after[table] == before[table], table
    diff, _ = _schema(path)
    assert diff == []
    assert _revisions(path) == [HEAD_REVISION]
    assert _query(path, "PRAGMA integrity_check") == [("ok",)]
