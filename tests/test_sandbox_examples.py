"""The sandbox examples run as scripts in a fresh directory and record what they print."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def experiments(db: Path) -> list[tuple[str, str, str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT id, project, status, tags FROM experiments ORDER BY start_time"
        ).fetchall()


@pytest.mark.slow
def test_the_demo_records_a_completed_experiment_and_prints_it(tmp_path: Path) -> None:
    out = run_example("demo.py", tmp_path)
    ((experiment_id, project, status, tags),) = experiments(tmp_path / "experiments.db")
    assert (project, status, json.loads(tags)) == ("demo", "COMPLETED", {"example": "demo"})
    assert f"Experiment   {experiment_id}" in out
    assert "Status       COMPLETED" in out
    assert "Requests     20 sent, 0 failed" in out
    assert "0:count_findings [preprocessing], 1:make_card [card-creation]" in out
    with closing(sqlite3.connect(tmp_path / "experiments.db")) as conn:
        assert conn.execute(
            "SELECT count(*) FROM requests WHERE experiment_id = ?", (experiment_id,)
        ).fetchone() == (20,)
    folder = tmp_path / "output" / experiment_id
    assert sorted(path.name for path in (tmp_path / "output").iterdir()) == [experiment_id]
    assert len(list(folder.glob("*.json"))) == 40
    assert f"Saved        {folder}\n" in out
    assert f"Database     {tmp_path / 'experiments.db'}\n" in out


@pytest.mark.slow
def test_the_quickstart_runs_as_documented(tmp_path: Path) -> None:
    out = run_example("quickstart.py", tmp_path)
    ((experiment_id, project, status, tags),) = experiments(tmp_path / "experiments.db")
    assert (project, status) == ("my_project", "COMPLETED")
    assert json.loads(tags) == {"environment": "production"}
    assert f"Experiment {experiment_id}\nStatus: COMPLETED\n" in out
    assert f"Database: {tmp_path / 'experiments.db'}\n" in out


@pytest.mark.slow
def test_the_async_handler_example_runs(tmp_path: Path) -> None:
    out = run_example("async_handler.py", tmp_path)
    ((experiment_id, project, status, _),) = experiments(tmp_path / "experiments.db")
    assert (project, status) == ("async_demo", "COMPLETED")
    assert out == (
        f"Experiment {experiment_id}: COMPLETED, 8 responses\n"
        f"Database: {tmp_path / 'experiments.db'}\n"
    )


@pytest.mark.slow
def test_the_tracking_example_runs_and_says_where_its_database_is(tmp_path: Path) -> None:
    out = run_example("track_experiments.py", tmp_path)
    assert len(experiments(tmp_path / "experiments.db")) >= 2
    assert out.endswith(f"Database: {tmp_path / 'experiments.db'}\n")
