"""The user documentation's snippets, run as written against a tracker-made database."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import healthchain as hc


@pytest.fixture
def in_tmp_dir(tmp_path: Path) -> Iterator[Path]:
    """The seed uses the relative 'experiments.db': run where that lands in tmp_path."""
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(cwd)


@pytest.fixture
def recorded(in_tmp_dir: Path) -> Iterator[tuple[hc.ExperimentTracker, list[str]]]:
    tracker = hc.ExperimentTracker(
        "sqlite:///experiments.db", project_name="my_project", tags={"environment": "production"}
    )
    ids = []
    for i in range(7):
        experiment_id = tracker.start_experiment(
            f"run{i}",
            tags={} if i % 3 else {"environment": "staging"},
            components=[
                {"name": "summariser", "type": "ChatModel", "stage": "inference"},
                {"name": "cards", "type": "function", "stage": "postprocess"},
            ],
        )
        tracker.end_experiment(experiment_id)
        ids.append(experiment_id)
    try:
        yield tracker, ids
    finally:
        tracker.close()


def test_using_python_api_block(recorded: tuple[hc.ExperimentTracker, list[str]]) -> None:
    tracker, ids = recorded
    experiment_id = ids[-1]
    # --- as written in the seed ---
    experiment = tracker.get_experiment(experiment_id)
    print(f"Status: {experiment.status}")
    print(f"Duration: {experiment.end_time - experiment.start_time}")  # type: ignore[operator]

    experiments = tracker.list_experiments()

    prod_experiments = tracker.list_experiments(filters={"tags": {"environment": "production"}})
    # --- end ---
    assert f"{experiment.status}" == "COMPLETED"
    assert len(experiments) == 7
    assert {e.id for e in prod_experiments} == {ids[i] for i in range(7) if i % 3}


def test_querying_the_database_directly(
    recorded: tuple[hc.ExperimentTracker, list[str]],
) -> None:
    tracker, ids = recorded
    experiment_id = ids[2]
    # --- as written in the seed ---
    conn = sqlite3.connect("experiments.db")
    cursor = conn.cursor()

    cursor.execute("""
        SELECT id, name, start_time, status, tags
        FROM experiments
        ORDER BY start_time DESC
        LIMIT 5;
    """)
    recent_experiments = cursor.fetchall()

    cursor.execute("""
        SELECT id, name, start_time, status
        FROM experiments
        WHERE json_extract(tags, '$.environment') = 'production';
    """)
    prod_experiments = cursor.fetchall()

    cursor.execute(
        """
        SELECT name, type, stage
        FROM pipeline_components
        WHERE experiment_id = ?;
    """,
        (experiment_id,),
    )
    components = cursor.fetchall()

    conn.close()
    # --- end ---
    assert [row[0] for row in recent_experiments] == ids[::-1][:5]  # chronological, newest first
    assert [row[3] for row in recent_experiments] == ["COMPLETED"] * 5
    assert {row[0] for row in prod_experiments} == {ids[i] for i in range(7) if i % 3}
    assert components == [
        ("summariser", "ChatModel", "inference"),
        ("cards", "function", "postprocess"),
    ]
    assert {e.id for e in tracker.list_experiments()} == set(ids)
