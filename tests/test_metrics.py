"""Metrics and params: log_metric, log_metrics, log_params, get_metric_history.

Against a real SQLite file and the real PostgreSQL server; what is stored is read back
through a side door where the API alone cannot show it (the latest-value table).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers.storage import Storage

from healthchain import MetricPoint as TopLevelMetricPoint
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentStateError,
    ExperimentStatus,
    ExperimentTracker,
    InvalidInputError,
    MetricPoint,
    StorageError,
    TrackerClosedError,
    _steps,
)

pytestmark = pytest.mark.anyio

UNKNOWN = "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e"
# Floats that a text or single-precision round trip would change.
EXACT = [0.1, 1e-300, 5e-324, 1.7976931348623157e308, 2.0**53 + 2, math.pi]


def values(points: list[MetricPoint]) -> list[float]:
    return [p.value for p in points]


def steps(points: list[MetricPoint]) -> list[int]:
    return [p.step for p in points]


# --- log_metric and get_metric_history ---------------------------------------------------


async def test_points_round_trip_with_steps_timestamps_and_exact_values(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        before = datetime.now(UTC)
        for value in [*EXACT, 3]:
            await tracker.log_metric(experiment_id, "loss", value)
        after = datetime.now(UTC)
        history = await tracker.get_metric_history(experiment_id, "loss")

    assert steps(history) == list(range(len(EXACT) + 1))
    assert values(history) == [*EXACT, 3.0]
    assert all(isinstance(p, MetricPoint) and type(p.value) is float for p in history)
    assert all(before <= p.timestamp <= after for p in history)
    assert all(p.timestamp.tzinfo is UTC for p in history)
    assert TopLevelMetricPoint is MetricPoint


async def test_nan_and_infinities_are_stored_and_read_back_exactly(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "x", float("nan"))
        await tracker.log_metric(experiment_id, "x", float("inf"))
        await tracker.log_metric(experiment_id, "x", float("-inf"))
        await tracker.log_metrics(experiment_id, {"y": float("nan"), "z": float("inf")})
        x = values(await tracker.get_metric_history(experiment_id, "x"))
        y = values(await tracker.get_metric_history(experiment_id, "y"))
        z = values(await tracker.get_metric_history(experiment_id, "z"))

    assert math.isnan(x[0]) and x[1:] == [math.inf, -math.inf]
    assert math.isnan(y[0]) and z == [math.inf]


async def test_negative_zero_reads_back_as_stored_on_every_read_path(any_storage_uri: str) -> None:
    # PostgreSQL keeps the sign; SQLite writes a REAL with no fraction as an integer, so
    # -0.0 comes back as 0.0 there (as docs/guide/metrics.md says).
    sign = 1.0 if any_storage_uri.startswith("sqlite") else -1.0
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment("signed")
        await tracker.log_metric(run, "delta", -0.0)
        found = [
            (await tracker.get_experiment(run)).metrics["delta"],
            (await tracker.get_metric_history(run, "delta"))[0].value,
            (await tracker.get_metric_values(run, "delta"))[0][1],
            (await tracker.list_experiments(order_by="-metrics.delta"))[0].metrics["delta"],
            (await tracker.list_experiments({"metrics": {"delta": ("=", 0)}}))[0].metrics["delta"],
        ]
    assert found == [0.0] * len(found)
    assert [math.copysign(1.0, value) for value in found] == [sign] * len(found)


async def test_64_tasks_get_steps_in_call_order(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        # Twice: the first round finds no step known for the key (this tracker did not
        # start the experiment: the writer looks it up), the second does.
        for round_ in range(2):
            await asyncio.gather(
                *(tracker.log_metric(experiment_id, "n", round_ * 64 + i) for i in range(64))
            )
        history = await tracker.get_metric_history(experiment_id, "n")

    assert steps(history) == list(range(128))
    assert values(history) == [float(i) for i in range(128)]


async def test_steps_given_while_the_writer_finds_a_key_s_last_step_are_counted(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "k", 0.0, step=9)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:  # knows no step of "k"
        await asyncio.gather(
            *(tracker.log_metric(experiment_id, "k", 1.0) for _ in range(3)),  # 10, 11, 12
            tracker.log_metric(experiment_id, "k", 2.0, step=50),
            tracker.log_metric(experiment_id, "k", 3.0, step=20),
            *(tracker.log_metric(experiment_id, "k", 4.0) for _ in range(2)),  # 51, 52
        )
        await tracker.log_metric(experiment_id, "k", 5.0)  # stepped by the tracker: 53
        history = await tracker.get_metric_history(experiment_id, "k")

    assert [(p.step, p.value) for p in history] == [
        (9, 0.0),
        (10, 1.0),
        (11, 1.0),
        (12, 1.0),
        (20, 3.0),
        (50, 2.0),
        (51, 4.0),
        (52, 4.0),
        (53, 5.0),
    ]


async def test_steps_continue_past_the_highest_step_logged(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "acc", 0.1)  # 0
        await tracker.log_metric(experiment_id, "acc", 0.2, step=10)
        await tracker.log_metric(experiment_id, "acc", 0.3, step=4)  # lower: no reset
        await tracker.log_metric(experiment_id, "acc", 0.4)  # 11
        await tracker.log_metric(experiment_id, "other", 1.0)  # each key has its own steps
        history = await tracker.get_metric_history(experiment_id, "acc")
        other = await tracker.get_metric_history(experiment_id, "other")

    assert [(p.step, p.value) for p in history] == [(0, 0.1), (4, 0.3), (10, 0.2), (11, 0.4)]
    assert steps(other) == [0]


async def test_a_new_tracker_continues_the_stored_steps(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "loss", 1.0, step=41)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        await tracker.log_metric(experiment_id, "loss", 2.0)
        await tracker.log_metrics(experiment_id, {"loss": 3.0, "new": 4.0})
        history = await tracker.get_metric_history(experiment_id, "loss")
        new = await tracker.get_metric_history(experiment_id, "new")

    assert steps(history) == [41, 42, 43]
    assert steps(new) == [0]


async def test_forgotten_step_counters_are_looked_up_again(
    any_storage_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_steps, "MAX_STEP_COUNTERS", 2)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        for _ in range(3):
            for key in ("a", "b", "c"):  # three keys, two remembered: each is forgotten
                await tracker.log_metric(experiment_id, key, 1.0)
        assert len(tracker._steps) == 2
        histories = [await tracker.get_metric_history(experiment_id, k) for k in "abc"]

    assert [steps(h) for h in histories] == [[0, 1, 2]] * 3


def test_a_started_experiment_s_keys_start_at_step_0_until_one_is_forgotten() -> None:
    """Keys of an experiment the tracker started have no stored points: step 0 with
    nothing to look up. Once any counter of it is forgotten, its stored steps matter."""
    counters = _steps.StepCounters(maxsize=2)
    counters.started("e")
    assert counters.assign("e", ["a"], None) == ([0], [])
    assert counters.assign("e", ["b"], 5) == ([5], [])
    assert counters.assign("e", ["c"], None)[0] == [None]  # "a" forgotten: looked up
    steps, waiting = counters.assign("e", ["a"], None)
    assert steps == [None] and len(waiting) == 1
    assert counters.assign("other", ["a"], None)[0] == [None]  # not started here


async def test_timestamps_given_are_kept_as_the_same_instant(any_storage_uri: str) -> None:
    plus_two = timezone(timedelta(hours=2))
    first = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=plus_two)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "t", 1, timestamp=first)
        await tracker.log_metrics(experiment_id, {"t": 2}, timestamp=first + timedelta(days=1))
        history = await tracker.get_metric_history(experiment_id, "t")

    assert [p.timestamp for p in history] == [first, first + timedelta(days=1)]
    assert history[0].timestamp.tzinfo is UTC


async def test_history_is_ordered_by_step_then_timestamp(any_storage_uri: str) -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        for step, seconds, value in [(5, 0, 1.0), (1, 9, 2.0), (3, 0, 3.0), (1, 2, 4.0)]:
            await tracker.log_metric(
                experiment_id, "m", value, step=step, timestamp=t0 + timedelta(seconds=seconds)
            )
        history = await tracker.get_metric_history(experiment_id, "m")
        assert await tracker.get_metric_history(experiment_id, "never logged") == []

    assert [(p.step, p.value) for p in history] == [(1, 4.0), (1, 2.0), (3, 3.0), (5, 1.0)]


async def test_log_metrics_writes_every_key_at_one_step(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "a", 0.0)
        await tracker.log_metrics(experiment_id, {"a": 1, "b": 2.5})  # a at 1, b at 0
        await tracker.log_metrics(experiment_id, {"a": 3, "b": 4}, step=7)
        await tracker.log_metrics(experiment_id, {})  # nothing to write
        a = await tracker.get_metric_history(experiment_id, "a")
        b = await tracker.get_metric_history(experiment_id, "b")

    assert [(p.step, p.value) for p in a] == [(0, 0.0), (1, 1.0), (7, 3.0)]
    assert [(p.step, p.value) for p in b] == [(0, 2.5), (7, 4.0)]
    assert a[2].timestamp == b[1].timestamp


async def test_metrics_and_params_may_be_logged_after_the_run_ended(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.end_experiment(experiment_id, ExperimentStatus.FAILED, error="boom")
        await tracker.log_metric(experiment_id, "rouge", 0.4)
        await tracker.log_params(experiment_id, {"scorer": "rouge-l"})
        assert values(await tracker.get_metric_history(experiment_id, "rouge")) == [0.4]
        assert (await tracker.get_experiment(experiment_id)).status is ExperimentStatus.FAILED


# --- bad input and unknown experiments ----------------------------------------------------


BAD_KEYS: list[tuple[Any, str]] = [
    ("", "non-empty string"),
    (None, "non-empty string"),
    (3, "non-empty string"),
    (b"loss", "non-empty string"),
    ("lo\x00ss", "NUL"),
    ("lo\ud800ss", "surrogate"),
    ("k" * 2049, "2,049 bytes"),
    ("é" * 1025, "2,050 bytes"),
]
BAD_VALUES: list[tuple[Any, str]] = [
    (True, "int or a float, got bool"),
    ("0.5", "int or a float, got str"),
    (None, "int or a float, got NoneType"),
    (10**400, "too large for a float"),
]
BAD_STEPS = [-1, 1.5, True, "3", 2**63]
BAD_TIMESTAMPS: list[Any] = [datetime(2026, 1, 1), "2026-01-01T00:00:00Z", 0]


async def test_bad_keys_values_steps_and_times_are_refused_with_nothing_written(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        for key, message in BAD_KEYS:
            with pytest.raises(InvalidInputError, match=message):
                await tracker.log_metric(experiment_id, key, 1.0)
            with pytest.raises(InvalidInputError, match=message):
                await tracker.log_metrics(experiment_id, {"good": 1.0, key: 1.0})
        for value, message in BAD_VALUES:
            with pytest.raises(InvalidInputError, match=message):
                await tracker.log_metric(experiment_id, "good", value)
            with pytest.raises(InvalidInputError, match=r"metrics\['good'\]"):
                await tracker.log_metrics(experiment_id, {"ok": 1.0, "good": value})
        for step in BAD_STEPS:
            with pytest.raises(InvalidInputError, match=r"step must be an integer .*got"):
                await tracker.log_metric(experiment_id, "good", 1.0, step=step)
            with pytest.raises(InvalidInputError, match=r"step must be an integer"):
                await tracker.log_metrics(experiment_id, {"good": 1.0}, step=step)
            with pytest.raises(InvalidInputError, match=r"step must be an integer"):
                await tracker.log_metrics(experiment_id, {}, step=step)
        for timestamp in BAD_TIMESTAMPS:
            with pytest.raises(InvalidInputError, match=r"timestamp must be a timezone-aware"):
                await tracker.log_metric(experiment_id, "good", 1.0, timestamp=timestamp)
            with pytest.raises(InvalidInputError, match=r"timestamp must be a timezone-aware"):
                await tracker.log_metrics(experiment_id, {}, timestamp=timestamp)
        for metrics in (None, [("good", 1.0)], "good"):
            with pytest.raises(InvalidInputError, match=r"metrics must be a dict"):
                await tracker.log_metrics(experiment_id, metrics)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match=r"key must be a non-empty string"):
            await tracker.get_metric_history(experiment_id, "")
        for key in ("good", "ok"):
            assert await tracker.get_metric_history(experiment_id, key) == []
        # Nothing was queued half-way: the next point still gets step 0.
        await tracker.log_metric(experiment_id, "good", 1.0)
        assert steps(await tracker.get_metric_history(experiment_id, "good")) == [0]


async def test_a_key_that_reached_the_largest_step_takes_no_further_step(
    any_storage_uri: str,
) -> None:
    largest = 2**63 - 1
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "k", 1.0, step=largest)
        for _ in range(2):  # the tracker knows the step
            with pytest.raises(InvalidInputError, match=r"'k' .* reached step 9,223,372,036,"):
                await tracker.log_metrics(experiment_id, {"fresh": 1.0, "k": 2.0})
    async with AsyncExperimentTracker(any_storage_uri) as tracker:  # the writer finds it
        with pytest.raises(InvalidInputError, match=r"'k' .* reached step"):
            await tracker.log_metric(experiment_id, "k", 3.0)
        await tracker.log_metric(experiment_id, "k", 4.0, step=7)
        history = await tracker.get_metric_history(experiment_id, "k")
        assert [(p.step, p.value) for p in history] == [(7, 4.0), (largest, 1.0)]
        assert await tracker.get_metric_history(experiment_id, "fresh") == []


async def test_numbers_of_other_types_are_taken_as_floats(any_storage_uri: str) -> None:
    from fractions import Fraction

    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "f", Fraction(1, 4), step=1)
        await tracker.log_metric(experiment_id, "f", 7)
        assert [
            (p.step, p.value) for p in await tracker.get_metric_history(experiment_id, "f")
        ] == [
            (1, 0.25),
            (2, 7.0),
        ]


async def test_unknown_experiments_are_not_found_and_nothing_is_written(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        for experiment_id in (UNKNOWN, "not an id", "x" * 40, "nul\x00"):
            with pytest.raises(ExperimentNotFoundError, match=re.escape(repr(experiment_id))):
                await tracker.log_metric(experiment_id, "m", 1.0)
            with pytest.raises(ExperimentNotFoundError):
                await tracker.log_metric(experiment_id, "m", 1.0, step=3)
            with pytest.raises(ExperimentNotFoundError):
                await tracker.log_metrics(experiment_id, {"m": 1.0, "n": 2.0})
            with pytest.raises(ExperimentNotFoundError):
                await tracker.log_params(experiment_id, {"p": 1})
            with pytest.raises(ExperimentNotFoundError):
                await tracker.get_metric_history(experiment_id, "m")
        with pytest.raises(InvalidInputError, match="experiment_id must be a string"):
            await tracker.log_metric(None, "m", 1.0)  # type: ignore[arg-type]
        # The failed writes left the step counter usable for a real experiment.
        experiment_id = await tracker.start_experiment()
        await tracker.log_metric(experiment_id, "m", 1.0)
        assert steps(await tracker.get_metric_history(experiment_id, "m")) == [0]


async def test_one_unknown_experiment_does_not_fail_the_writes_batched_with_it(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        calls = [tracker.log_metric(experiment_id, "n", i) for i in range(40)]
        calls.insert(20, tracker.log_metric(UNKNOWN, "n", -1.0))
        calls.insert(30, tracker.log_params(UNKNOWN, {"p": 1}))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        history = await tracker.get_metric_history(experiment_id, "n")

    failed = [o for o in outcomes if o is not None]
    assert len(failed) == 2 and all(isinstance(o, ExperimentNotFoundError) for o in failed)
    assert steps(history) == list(range(40))
    assert values(history) == [float(i) for i in range(40)]


async def test_a_cancelled_caller_leaves_steps_unique(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        task = asyncio.ensure_future(tracker.log_metric(experiment_id, "c", 0.0))
        await asyncio.sleep(0)  # queued, not yet written
        task.cancel()
        await asyncio.gather(*(tracker.log_metric(experiment_id, "c", 1.0) for _ in range(5)))
        await tracker.log_metric(experiment_id, "c", 2.0)
        history = await tracker.get_metric_history(experiment_id, "c")

    assert len(history) in (6, 7)  # the cancelled point may or may not have been written
    assert steps(history) == list(range(len(history)))


async def test_a_closed_tracker_refuses_metrics(storage_uri: str) -> None:
    tracker = AsyncExperimentTracker(storage_uri)
    experiment_id = await tracker.start_experiment()
    await tracker.aclose()
    with pytest.raises(TrackerClosedError):
        await tracker.log_metric(experiment_id, "m", 1.0)
    with pytest.raises(TrackerClosedError):
        await tracker.log_params(experiment_id, {"p": 1})
    with pytest.raises(TrackerClosedError):
        await tracker.get_metric_history(experiment_id, "m")


# --- params -------------------------------------------------------------------------------

PARAMS: dict[str, Any] = {
    "model": "zephyr-7b",
    "temperature": 0.2,
    "layers": [1, 2, {"b": None, "a": True}],
    "unicode": "über ✓",
}


def test_params_are_stored_as_json_and_equal_values_are_a_no_op(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        tracker.log_params(experiment_id, PARAMS)
        tracker.log_params(experiment_id, {"model": "zephyr-7b", "new": 1})  # model unchanged
        tracker.log_params(experiment_id, {})
    rows = any_storage.query(
        "SELECT key, value FROM params WHERE experiment_id = ? ORDER BY key", experiment_id
    )
    assert rows == [
        ("layers", '[1,2,{"a":true,"b":null}]'),
        ("model", '"zephyr-7b"'),
        ("new", "1"),
        ("temperature", "0.2"),
        ("unicode", '"über ✓"'),
    ]


async def test_a_changed_param_is_refused_naming_the_key_and_both_values(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        await tracker.log_params(experiment_id, {"lr": 0.1, "model": "a"})
        for change in ({"lr": 0.2}, {"lr": 1}, {"model": ["a"]}):
            key, value = next(iter(change.items()))
            with pytest.raises(ExperimentStateError) as caught:
                await tracker.log_params(experiment_id, {"fresh": 1, **change})
            message = str(caught.value)
            assert repr(key) in message and repr(value) in message
            assert repr(experiment_id) in message
        with pytest.raises(ExperimentStateError, match=r"'lr'.* 0\.1;.* 0\.2"):
            await tracker.log_params(experiment_id, {"lr": 0.2})
        # Nothing of a refused call was written: "fresh" can still take any value.
        await tracker.log_params(experiment_id, {"fresh": "later"})
        with pytest.raises(ExperimentStateError, match=r"'fresh'.*'later'.*'again'"):
            await tracker.log_params(experiment_id, {"fresh": "again"})


async def test_changed_params_batched_with_others_fail_alone(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        outcomes = await asyncio.gather(
            tracker.log_params(experiment_id, {"p": 1}),
            tracker.log_params(experiment_id, {"p": 2, "q": 1}),  # p changed: refused
            tracker.log_params(experiment_id, {"p": 1, "r": 1}),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], ExperimentStateError)
        await tracker.log_params(experiment_id, {"q": "free"})  # q was not written


async def test_bad_params_are_refused_with_nothing_written(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        for bad, message in [
            (["p", 1], "params must be a dict"),
            ({"": 1}, "params keys must be non-empty strings"),
            ({1: 1}, "params keys must be non-empty strings"),
            ({"p\x00": 1}, "NUL"),
            ({"p": "\ud800"}, "surrogate"),
            ({"ok": 1, "p": object()}, r"params\['p'\] = <object.*not JSON-serialisable"),
            ({"p": math.nan}, "not JSON-serialisable"),
            ({"p": "x" * 3000}, "a tag may take at most"),
        ]:
            with pytest.raises(InvalidInputError, match=message):
                await tracker.log_params(experiment_id, bad)  # type: ignore[arg-type]
        await tracker.log_params(experiment_id, {"ok": "anything", "p": 2})


# --- what is stored -----------------------------------------------------------------------


def test_the_latest_value_is_the_highest_step_then_the_latest_time(any_storage: Storage) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        tracker.log_metric(experiment_id, "a", 1.0, step=5, timestamp=t0)
        tracker.log_metric(experiment_id, "a", 2.0, step=3, timestamp=t0 + timedelta(hours=1))
        tracker.log_metric(experiment_id, "b", 1.0, step=2, timestamp=t0 + timedelta(hours=1))
        tracker.log_metric(experiment_id, "b", 2.0, step=2, timestamp=t0)  # earlier: kept out
        tracker.log_metric(experiment_id, "c", 1.0, step=2, timestamp=t0)
        tracker.log_metric(experiment_id, "c", 2.0, step=2, timestamp=t0)  # a tie: newest write
        tracker.log_metric(experiment_id, "n", 1.0)
        tracker.log_metric(experiment_id, "n", math.nan)
        # In one batch: reduced to each key's latest before the upsert.
        tracker.portal.call(_log_many, tracker.async_tracker, experiment_id)
    rows = any_storage.query(
        "SELECT key, step, value FROM latest_metrics WHERE experiment_id = ? ORDER BY key",
        experiment_id,
    )
    assert rows == [
        ("a", 5, 1.0),
        ("b", 2, 1.0),
        ("c", 2, 2.0),
        ("many", 63, 63.0),
        ("mixed", 6, 2.0),
        ("n", 1, None),  # NaN is stored as NULL
        ("other", 9, 0.0),
    ]


async def _log_many(tracker: AsyncExperimentTracker, experiment_id: str) -> None:
    await asyncio.gather(
        *(tracker.log_metric(experiment_id, "many", i) for i in range(64)),
        *(tracker.log_metric(experiment_id, "other", -i, step=9 - i) for i in range(10)),
        tracker.log_metric(experiment_id, "mixed", 1.0, step=5),
        tracker.log_metric(experiment_id, "mixed", 2.0),  # step 6: the latest
        tracker.log_metric(experiment_id, "mixed", 3.0, step=2),
    )


def test_hundreds_of_points_in_one_write_are_all_stored(any_storage: Storage) -> None:
    # SQLite binds them a chunk of rows per statement: 300 is 128 + 128 + 32 + 8 + 4.
    metrics = {f"m{i:03}": i / 7 for i in range(300)}
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        tracker.log_metrics(experiment_id, metrics, step=3)
        tracker.log_params(experiment_id, {f"p{i}": i for i in range(300)})
    points = any_storage.query(
        "SELECT key, step, value FROM metric_points WHERE experiment_id = ? ORDER BY key",
        experiment_id,
    )
    latest = any_storage.query(
        "SELECT key, step, value FROM latest_metrics WHERE experiment_id = ? ORDER BY key",
        experiment_id,
    )
    assert points == latest == [(k, 3, v) for k, v in metrics.items()]
    assert any_storage.query("SELECT count(*) FROM params") == [(300,)]


def test_sqlite_binds_many_rows_per_insert_whatever_the_values_clause(tmp_path: Path) -> None:
    from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, func, insert

    from healthchain.tracking._executors import CompiledCache, SqliteExecutor

    table = Table("t", MetaData(), Column("a", Integer), Column("b", Text))
    stmt = insert(table).values(a=bindparam("a"), b=func.json(bindparam("b")))
    with contextlib.closing(sqlite3.connect(tmp_path / "t.db")) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        ex = SqliteExecutor(conn, CompiledCache())
        ex.begin()
        assert ex.run(stmt, [{"a": i, "b": f'{{"i": {i}}}'} for i in range(300)]) == 300
        ex.commit()
        rows = conn.execute("SELECT a, b FROM t ORDER BY a").fetchall()
    assert rows == [(i, f'{{"i":{i}}}') for i in range(300)]


def test_deleting_an_experiment_deletes_its_metrics_and_params(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        doomed, kept = tracker.start_experiment(), tracker.start_experiment()
        for experiment_id in (doomed, kept):
            tracker.log_metrics(experiment_id, {"a": 1, "b": 2})
            tracker.log_params(experiment_id, {"p": 1})
        assert tracker.delete_experiments([doomed]) == 1
        with pytest.raises(ExperimentNotFoundError):
            tracker.get_metric_history(doomed, "a")
        assert values(tracker.get_metric_history(kept, "a")) == [1.0]
    for table in ("metric_points", "latest_metrics", "params"):
        rows = any_storage.query(f"SELECT DISTINCT experiment_id FROM {table}")
        assert rows == [(kept,)], table


def test_the_sync_tracker_mirrors_the_metric_calls(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        tracker.log_metric(experiment_id, "m", 1, step=2)
        tracker.log_metrics(experiment_id, {"m": 2, "k": 3})
        tracker.log_params(experiment_id, {"p": [1]})
        tracker.log_params(experiment_id, {"p": [1]})
        with pytest.raises(ExperimentStateError, match=r"'p'.*\[1\].*\[2\]"):
            tracker.log_params(experiment_id, {"p": [2]})
        history = tracker.get_metric_history(experiment_id, "m")
        with pytest.raises(ExperimentNotFoundError):
            tracker.log_metric(UNKNOWN, "m", 1)
    assert [(p.step, p.value) for p in history] == [(2, 1.0), (3, 2.0)]


# --- what another program does to the same tables ----------------------------------------


def test_a_point_refused_by_another_program_s_trigger_fails_alone(
    sqlite_storage: Storage,
) -> None:
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        experiment_id = tracker.start_experiment()
        sqlite_storage.query(
            "CREATE TRIGGER refuse BEFORE INSERT ON metric_points WHEN NEW.key = 'vetoed' "
            "BEGIN SELECT RAISE(ABORT, 'vetoed by a trigger'); END"
        )
        with pytest.raises(StorageError, match=r"log_metric on .* failed: .*vetoed by a trigger"):
            tracker.log_metric(experiment_id, "vetoed", 1.0)
        outcomes = tracker.portal.call(
            _log_beside_a_vetoed_point, tracker.async_tracker, experiment_id
        )
        assert [type(o) for o in outcomes] == [type(None)] * 10 + [StorageError]
        assert values(tracker.get_metric_history(experiment_id, "fine")) == [
            float(i) for i in range(10)
        ]
        assert tracker.get_metric_history(experiment_id, "vetoed") == []


async def _log_beside_a_vetoed_point(
    tracker: AsyncExperimentTracker, experiment_id: str
) -> list[object]:
    return await asyncio.gather(
        *(tracker.log_metric(experiment_id, "fine", i) for i in range(10)),
        tracker.log_metrics(experiment_id, {"fine2": 1.0, "vetoed": 2.0}),
        return_exceptions=True,
    )


async def test_a_param_another_writer_stores_meanwhile_is_judged_again(postgres_uri: str) -> None:
    import asyncpg

    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        other, watcher = await asyncpg.connect(postgres_uri), await asyncpg.connect(postgres_uri)
        try:
            async with other.transaction():
                await other.execute(
                    """INSERT INTO params VALUES ($1, 'p', '"x"'), ($1, 'q', '1')""", experiment_id
                )
                changed = asyncio.ensure_future(
                    tracker.log_params(experiment_id, {"p": "y", "r": 1})
                )
                # The tracker's insert waits on the other writer's uncommitted key.
                for _ in range(3000):
                    if await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    ):
                        break
                    await asyncio.sleep(0.01)
                else:
                    pytest.fail("the tracker's insert never waited for the other writer")
            with pytest.raises(ExperimentStateError, match=r"'p'.* 'x'; it cannot become 'y'"):
                await changed
        finally:
            await other.close()
            await watcher.close()
        await tracker.log_params(experiment_id, {"q": 1, "r": "free"})  # q equal; r unwritten
        with pytest.raises(ExperimentStateError, match=r"'r'.*'free'.* 2"):
            await tracker.log_params(experiment_id, {"r": 2})
