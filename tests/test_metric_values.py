"""get_metric_values: a metric's (step, value) pairs, the charts' read, agreeing with
get_metric_history on every backend."""

from __future__ import annotations

import math

import pytest

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentTracker,
    InvalidInputError,
)

pytestmark = pytest.mark.anyio


async def test_values_are_the_history_without_timestamps(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment("run")
        await tracker.log_metric(run, "loss", 3.0, step=5)
        await tracker.log_metric(run, "loss", 1.0, step=1)
        await tracker.log_metric(run, "loss", math.nan, step=2)
        await tracker.log_metric(run, "loss", 2.0, step=5)  # the same step again
        await tracker.log_metric(run, "other", 9.0)
        values = await tracker.get_metric_values(run, "loss")
        history = await tracker.get_metric_history(run, "loss")
        assert [(s, v) for s, v in values if not math.isnan(v)] == [(1, 1.0), (5, 3.0), (5, 2.0)]
        assert math.isnan(values[1][1]) and values[1][0] == 2
        assert [s for s, _ in values] == [p.step for p in history]
        assert await tracker.get_metric_values(run, "never-logged") == []


async def test_values_without_nan_are_plain_pairs(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment("run")
        await tracker.log_metrics(run, {"acc": 0.5}, step=3)
        await tracker.log_metrics(run, {"acc": -math.inf}, step=1)
        await tracker.log_metrics(run, {"acc": 2}, step=7)
        values = await tracker.get_metric_values(run, "acc")
        assert values == [(1, -math.inf), (3, 0.5), (7, 2.0)]
        assert all(type(pair) is tuple for pair in values)


async def test_unknown_experiment_and_bad_key(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment("run")
        with pytest.raises(ExperimentNotFoundError, match="'0190b5c8-0000"):
            await tracker.get_metric_values("0190b5c8-0000-7000-8000-000000000000", "loss")
        with pytest.raises(ExperimentNotFoundError):
            await tracker.get_metric_values("x" * 40, "loss")
        with pytest.raises(InvalidInputError, match="key"):
            await tracker.get_metric_values(run, "")


def test_the_sync_facade_reads_the_same(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        run = tracker.start_experiment("run")
        tracker.log_metrics(run, {"acc": 0.5}, step=3)
        assert tracker.get_metric_values(run, "acc") == [(3, 0.5)]
