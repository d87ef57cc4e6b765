"""Experiments as a pandas DataFrame: the converter and the trackers' ``to_dataframe``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest
from helpers.pipelines import PIPELINE

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentStatus,
    ExperimentTracker,
    ExtraNotInstalledError,
    TrackerError,
)
from healthchain.tracking._dataframe import COLUMNS, experiments_to_dataframe


@pytest.fixture
def recorded(storage_uri: str) -> Iterator[dict[str, str]]:
    with ExperimentTracker(storage_uri, project_name="nb", tags={"env": "prod"}) as tracker:
        done = tracker.start_experiment("a", tags={"epochs": 3}, components=PIPELINE)
        tracker.end_experiment(done)
        failed = tracker.start_experiment("b", tags={"model": "zephyr"})
        tracker.end_experiment(failed, ExperimentStatus.FAILED, error="boom")
        running = tracker.start_experiment("c")  # RUNNING while the test runs
        yield {"done": done, "failed": failed, "running": running}


def test_frame_columns_types_and_order(storage_uri: str, recorded: dict[str, str]) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        experiments = tracker.list_experiments()
    frame = experiments_to_dataframe(experiments)

    assert list(frame.columns) == [*COLUMNS, "tags.env", "tags.epochs", "tags.model"]
    assert list(frame["id"]) == [recorded["running"], recorded["failed"], recorded["done"]]
    assert list(frame["status"]) == ["RUNNING", "FAILED", "COMPLETED"]
    assert str(frame["start_time"].dtype).startswith("datetime64") and "UTC" in str(
        frame["start_time"].dtype
    )
    assert pd.isna(frame["end_time"].iloc[0]) and pd.isna(frame["duration"].iloc[0])
    assert frame["duration"].iloc[2] >= timedelta(0)
    assert frame["duration"].iloc[2] == frame["end_time"].iloc[2] - frame["start_time"].iloc[2]
    assert frame["components"].iloc[2] == [dict(c, position=i) for i, c in enumerate(PIPELINE)]
    assert frame["tags"].iloc[1] == {"env": "prod", "model": "zephyr"}
    assert frame["tags.epochs"].iloc[2] == 3 and frame["tags.epochs"].iloc[1] is None
    assert frame["error"].iloc[1] == "boom"
    assert str(frame["pid"].dtype) == "Int64"
    # What notebooks do with it.
    assert frame.groupby("status").size().to_dict() == {"COMPLETED": 1, "FAILED": 1, "RUNNING": 1}


def test_empty_frame_keeps_its_columns() -> None:
    frame = experiments_to_dataframe([])
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 0
    assert str(frame["duration"].dtype).startswith("timedelta64")


def test_missing_pandas_names_the_extra(
    storage_uri: str, recorded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        experiments = tracker.list_experiments()
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an absent package looks like
    with pytest.raises(ExtraNotInstalledError, match=r"pip install 'healthchain\[pandas\]'"):
        experiments_to_dataframe(experiments)
    assert issubclass(ExtraNotInstalledError, TrackerError)
    assert issubclass(ExtraNotInstalledError, ImportError)


def test_sync_tracker_to_dataframe(storage_uri: str, recorded: dict[str, str]) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        frame = tracker.to_dataframe(filters={"tags": {"env": "prod"}, "status": "FAILED"})
    assert list(frame["id"]) == [recorded["failed"]]


@pytest.mark.anyio
async def test_async_tracker_to_dataframe(storage_uri: str, recorded: dict[str, str]) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        frame = await tracker.to_dataframe(filters={"project": "nb"}, limit=2)
    assert list(frame["id"]) == [recorded["running"], recorded["failed"]]
