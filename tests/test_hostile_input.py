"""Property tests: whatever tags and filters users send, the tracker gives documented
errors or correct results, and never touches other rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import STRESS_SCALE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthchain.tracking import ExperimentTracker, InvalidFilterError, InvalidInputError

NASTY = [
    "'; DROP TABLE experiments; --",
    '"',
    "$.environment",
    "a.b",
    "a[0]",
    "$",
    "%",
    "_",
    "\\",
    "\x00",
    "é",
    "🩺",
    " ",
    "null",
]
keys = st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=30))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.just("x" * 20_000),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
tag_dicts = st.dictionaries(keys, values, max_size=4)

SETTINGS = settings(
    max_examples=60 * STRESS_SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExperimentTracker]:
    path = tmp_path_factory.mktemp("hostile") / "experiments.db"
    with ExperimentTracker(f"sqlite:///{path}") as tracker:
        for i in range(3):  # bystanders that must never change
            tracker.end_experiment(
                tracker.start_experiment(f"bystander{i}", tags={"environment": "production"})
            )
        yield tracker


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _bystanders(tracker: ExperimentTracker) -> list[tuple[str, str, dict[str, Any]]]:
    return sorted(
        (e.id, e.status.value, e.tags)
        for e in tracker.list_experiments({"name": "bystander0"})
        + tracker.list_experiments({"name": "bystander1"})
        + tracker.list_experiments({"name": "bystander2"})
    )


@SETTINGS
@given(tags=tag_dicts)
def test_any_json_tags_round_trip_and_filter_exactly(
    tracker: ExperimentTracker, tags: dict[str, Any]
) -> None:
    before = _bystanders(tracker)
    experiment_id = tracker.start_experiment("prop", tags=tags)
    stored = tracker.get_experiment(experiment_id)
    assert stored.tags == _roundtrip(tags)
    found = tracker.list_experiments({"tags": tags, "name": "prop"})
    assert experiment_id in {e.id for e in found}
    assert all(_roundtrip(tags).items() <= e.tags.items() for e in found)
    assert _bystanders(tracker) == before
    tracker.delete_experiments([experiment_id])


@SETTINGS
@given(tags=tag_dicts)
def test_filters_never_match_what_does_not_hold(
    tracker: ExperimentTracker, tags: dict[str, Any]
) -> None:
    wanted = {**tags, "environment": "no-such-environment"}
    assert tracker.list_experiments({"tags": wanted}) == []
    everything = tracker.list_experiments()
    expected = {e.id for e in everything if _roundtrip(tags).items() <= e.tags.items()}
    assert {e.id for e in tracker.list_experiments({"tags": tags})} == expected


bad_tags = st.one_of(
    st.dictionaries(st.just(""), values, min_size=1),
    st.dictionaries(st.integers(), values, min_size=1),
    st.dictionaries(keys, st.just(float("nan")), min_size=1),
    st.dictionaries(keys, st.just({1, 2}), min_size=1),
    st.lists(keys, min_size=1),
    st.text(min_size=1),
)


@SETTINGS
@given(tags=bad_tags)
def test_bad_tags_are_refused_and_write_nothing(tracker: ExperimentTracker, tags: Any) -> None:
    count = len(tracker.list_experiments())
    with pytest.raises(InvalidInputError):
        tracker.start_experiment("bad", tags=tags)
    with pytest.raises(InvalidFilterError):
        tracker.list_experiments({"tags": tags})
    assert len(tracker.list_experiments()) == count


@SETTINGS
@given(key=st.text(max_size=20), value=st.text(max_size=20))
def test_unknown_filter_keys_and_statuses_are_named(
    tracker: ExperimentTracker, key: str, value: str
) -> None:
    if key not in ("tags", "status", "name", "project"):
        with pytest.raises(InvalidFilterError, match="unknown filter key") as info:
            tracker.list_experiments({key: value})
        assert repr(key) in str(info.value)
    if value.upper() not in ("RUNNING", "COMPLETED", "FAILED", "INTERRUPTED"):
        with pytest.raises(InvalidFilterError, match="unknown filters\\['status'\\]"):
            tracker.list_experiments({"status": value})


@SETTINGS
@given(name=st.one_of(st.sampled_from(NASTY), st.text(min_size=1, max_size=40)))
def test_names_and_projects_are_bound_never_interpolated(
    tracker: ExperimentTracker, name: str
) -> None:
    assert all(e.name == name for e in tracker.list_experiments({"name": name}))
    assert tracker.list_experiments({"project": name + "-none"}) == []


def test_the_schema_survived(tracker: ExperimentTracker, tmp_path: Path) -> None:
    path = tracker.storage_uri.split("///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    assert {"experiments", "experiment_tags", "pipeline_components"} <= tables
