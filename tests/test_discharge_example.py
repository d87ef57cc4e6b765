"""The documentation's real-world example runs offline and records one COMPLETED experiment.

It runs in a subprocess from a copy of ``examples/`` under ``tmp_path``, in another working
directory, where its database and saved files must land; its experiment and pipeline
components are then read back through ``ExperimentTracker`` and with the
documentation's own sqlite3 queries.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from healthchain.models import CDSRequest, CDSResponse
from healthchain.tracking import ExperimentStatus, ExperimentTracker

EXAMPLES = Path(__file__).parent.parent / "examples"
EXPECTED_COMPONENTS = [
    ("document_extractor", "function", "preprocessing"),
    ("llm", "LangChainLLM", "llm"),
    ("line_splitter", "function", "postprocessing"),
    ("card_creator", "CardCreator", "card-creation"),
]


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the example once, offline, from a copy of examples/ in another working
    directory; returns (that directory, stdout)."""
    workdir = tmp_path_factory.mktemp("example")
    rundir = tmp_path_factory.mktemp("run")
    shutil.copy(EXAMPLES / "discharge_summarizer.py", workdir)
    shutil.copytree(EXAMPLES / "templates", workdir / "templates")
    shutil.copytree(EXAMPLES / "data", workdir / "data")
    env = {k: v for k, v in os.environ.items() if k != "HUGGINGFACEHUB_API_TOKEN"}
    env["PYTHONWARNINGS"] = "error"
    completed = subprocess.run(
        [sys.executable, str(workdir / "discharge_summarizer.py")],
        cwd=rundir,  # elsewhere: the example must find its own files
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    # It changed no working directory: nothing was written beside the script.
    assert sorted(p.name for p in workdir.iterdir()) == [
        "data",
        "discharge_summarizer.py",
        "templates",
    ]
    return rundir, completed.stdout


@pytest.mark.slow
def test_example_records_one_completed_experiment(example_run: tuple[Path, str]) -> None:
    workdir, stdout = example_run
    with ExperimentTracker(storage_uri=f"sqlite:///{workdir / 'experiments.db'}") as tracker:
        (experiment,) = tracker.list_experiments()
        again = tracker.get_experiment(experiment.id)

    assert again == experiment
    assert experiment.status is ExperimentStatus.COMPLETED
    assert experiment.project == "patient_summary"
    assert experiment.error is None
    assert experiment.duration is not None
    assert [(c.name, c.type, c.stage) for c in experiment.components] == EXPECTED_COMPONENTS
    assert [c.position for c in experiment.components] == [0, 1, 2, 3]
    assert experiment.pipeline_config is not None
    assert experiment.pipeline_config["pipeline"] == "SummarizationPipeline"
    assert experiment.pipeline_config["chain"] == (
        "PromptTemplate | FakeListChatModel | StrOutputParser"
    )
    assert f"experiment {experiment.id}: COMPLETED" in stdout
    assert "[info] " in stdout
    assert f"database: {(workdir / 'experiments.db').resolve()}\n" in stdout
    assert f"requests and responses: {(workdir / 'output' / experiment.id).resolve()}\n" in stdout


@pytest.mark.slow
def test_example_experiment_matches_the_documented_sql(example_run: tuple[Path, str]) -> None:
    workdir, _ = example_run
    conn = sqlite3.connect(workdir / "experiments.db")
    try:
        cursor = conn.cursor()
        cursor.execute("""
            SELECT id, name, start_time, status, tags
            FROM experiments
            ORDER BY start_time DESC
            LIMIT 5;
        """)
        recent_experiments = cursor.fetchall()
        (experiment_id, _name, _start, status, tags) = recent_experiments[0]
        cursor.execute(
            """
            SELECT name, type, stage
            FROM pipeline_components
            WHERE experiment_id = ?;
        """,
            (experiment_id,),
        )
        components = cursor.fetchall()
        cursor.execute(
            "SELECT name FROM pipeline_components WHERE experiment_id = ? ORDER BY position",
            (experiment_id,),
        )
        ordered = [row[0] for row in cursor.fetchall()]
    finally:
        conn.close()

    assert len(recent_experiments) == 1
    assert status == "COMPLETED"
    assert json.loads(tags) == {}
    assert sorted(components) == sorted(EXPECTED_COMPONENTS)
    assert ordered == [name for name, _, _ in EXPECTED_COMPONENTS]


@pytest.mark.slow
def test_example_saves_requests_and_responses(example_run: tuple[Path, str]) -> None:
    workdir, _ = example_run
    with ExperimentTracker(storage_uri=f"sqlite:///{workdir / 'experiments.db'}") as tracker:
        (experiment,) = tracker.list_experiments()

    saved = sorted((workdir / "output").rglob("*.json"))
    assert saved, "no requests or responses were saved under output/"
    assert experiment.files_dir == str((workdir / "output" / experiment.id).resolve())
    assert all(path.parent == Path(experiment.files_dir) for path in saved)
    requests = [
        CDSRequest.model_validate_json(path.read_text(encoding="utf-8"))
        for path in saved
        if path.name.startswith("request_")
    ]
    responses = [
        CDSResponse.model_validate_json(path.read_text(encoding="utf-8"))
        for path in saved
        if path.name.startswith("response_")
    ]
    assert [r.hook for r in requests] == ["encounter-discharge"]
    assert len(responses) == 1
    assert len(responses[0].cards) == 3
    assert {card.indicator for card in responses[0].cards} == {"info"}


@pytest.mark.slow
def test_example_scores_each_summary_for_a_named_follow_up(example_run: tuple[Path, str]) -> None:
    """The first canned summary: a medication line, then a GP review and a booked X-ray."""
    workdir, stdout = example_run
    with ExperimentTracker(storage_uri=f"sqlite:///{workdir / 'experiments.db'}") as tracker:
        (experiment,) = tracker.list_experiments()
        (record,) = tracker.list_requests(experiment.id)
        (mean,) = tracker.get_metric_history(experiment.id, "follow_up_named")
        (requests,) = tracker.get_metric_history(experiment.id, "requests")
    assert record.scores == {"follow_up_named": 2 / 3}
    assert mean.value == 2 / 3
    assert requests.value == 1
    assert "mean follow_up_named: 0.67" in stdout
