"""Record a few experiments with the tracker alone, then read them back three ways.

Needs only ``pip install healthchain`` (no extra). Run from anywhere:
``python examples/track_experiments.py``. It writes ``experiments.db`` in the working
directory (the default storage) and prints what it recorded and the database's path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import healthchain as hc

PIPELINE = [
    {"name": "note_loader", "type": "function", "stage": "preprocess"},
    {"name": "zephyr-7b", "type": "ChatModel", "stage": "inference"},
    {"name": "card_renderer", "type": "Template", "stage": "postprocess"},
]


def main() -> None:
    with hc.ExperimentTracker(
        "sqlite:///experiments.db",
        project_name="patient_summary",
        tags={"environment": "production"},
    ) as tracker:
        with tracker.track("discharge-summaries", components=PIPELINE) as experiment_id:
            pass  # the work being tracked
        try:
            with tracker.track("flaky-run", tags={"environment": "staging"}):
                raise TimeoutError("model endpoint did not answer")
        except TimeoutError:
            pass

        experiment = tracker.get_experiment(experiment_id)
        print(f"Status: {experiment.status}")
        print(f"Duration: {experiment.end_time - experiment.start_time}")
        print("Components:", ", ".join(f"{c.position}:{c.name}" for c in experiment.components))
        for e in tracker.list_experiments(limit=5):
            print(f"{e.id}  {e.name:22} {e.status:11} {e.tags}")
        production = tracker.list_experiments(filters={"tags": {"environment": "production"}})
        print(f"{len(production)} production experiment(s) recorded")

    conn = sqlite3.connect("experiments.db")
    try:
        rows = conn.execute(
            "SELECT name, status FROM experiments "
            "WHERE json_extract(tags, '$.environment') = 'production' "
            "ORDER BY start_time DESC LIMIT 3"
        ).fetchall()
    finally:
        conn.close()
    print("Plain SQL sees:", rows)
    print(f"Database: {Path('experiments.db').resolve()}")


if __name__ == "__main__":
    main()
