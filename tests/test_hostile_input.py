"""Property tests: whatever tags and filters users send, the tracker gives documented
errors or correct results, and never touches other rows."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers import STRESS_SCALE
from helpers.postgres import postgres_url, reset_postgres
from helpers.storage import Storage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthchain.tracking import (
    ConfigurationError,
    ExperimentTracker,
    InvalidFilterError,
    InvalidInputError,
    RequestRecord,
)

pytestmark = pytest.mark.stress

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
    "\\u0000",  # a backslash and five characters, not NUL: stored as written
    "é",
    "🩺",
    " ",
    "null",
]
# Lone surrogates are not Unicode text (no UTF-8 form) and PostgreSQL cannot hold NUL in
# a text column: the tracker refuses both in keys and names, and surrogates anywhere,
# with a documented error (tested below). NUL inside a JSON value is stored, escaped.
UNSTORABLE = ["\x00", "\ud800", "\udfff"]
SURROGATES = UNSTORABLE[1:]
key_text = functools.partial(
    st.text, st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
)
value_text = functools.partial(st.text, st.characters(exclude_categories=["Cs"]))
keys = st.one_of(st.sampled_from(NASTY), key_text(min_size=1, max_size=30))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*NASTY, "\x00", "a\x00b"]),
    value_text(max_size=30),
    st.just("x" * 250),  # six leaves of it stay within a tag's 2,048 bytes
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(value_text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
tag_dicts = st.dictionaries(keys, values, max_size=4)

SETTINGS = settings(
    max_examples=60 * STRESS_SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """One database for the whole module (hypothesis runs many examples per test)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("hostile") / "experiments.db"
        return Storage("sqlite", f"sqlite:///{path}", path)
    url = postgres_url()
    asyncio.run(reset_postgres(url))
    return Storage("postgresql", url)


@pytest.fixture(scope="module")
def tracker(storage: Storage) -> Iterator[ExperimentTracker]:
    with ExperimentTracker(storage.uri) as tracker:
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
    # NUL in a key; a lone surrogate anywhere: in a key, a string value, deep in a value
    st.builds(lambda k, u, v: {k + u: v}, keys, st.sampled_from(UNSTORABLE), values),
    st.builds(lambda k, u: {k: "v" + u}, keys, st.sampled_from(SURROGATES)),
    st.builds(lambda k, u: {k: {"deep": [u, 1]}}, keys, st.sampled_from(SURROGATES)),
    st.lists(keys, min_size=1),
    st.text(min_size=1),
    # over the documented limits: a tag of more than 2,048 bytes, JSON over 64 levels deep
    st.builds(lambda k, n: {k: "x" * n}, keys, st.integers(2048, 100_000)),
    st.builds(lambda k, v: {k: functools.reduce(lambda x, _: [x], range(65), v)}, keys, values),
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
    if key not in ("tags", "status", "name", "project", "metrics", "params"):
        with pytest.raises(InvalidFilterError, match="unknown filter key") as info:
            tracker.list_experiments({key: value})
        assert repr(key) in str(info.value)
    if value.upper() not in ("RUNNING", "COMPLETED", "FAILED", "INTERRUPTED"):
        with pytest.raises(InvalidFilterError, match="unknown filters\\['status'\\]"):
            tracker.list_experiments({"status": value})


@SETTINGS
@given(
    name=st.one_of(
        st.sampled_from(NASTY + UNSTORABLE),
        st.text(min_size=1, max_size=40),
        st.builds(str.__add__, st.text(max_size=5), st.sampled_from(UNSTORABLE)),
    )
)
def test_names_and_projects_are_bound_never_interpolated(
    tracker: ExperimentTracker, name: str
) -> None:
    if any(u in name for u in UNSTORABLE):
        for key in ("name", "project"):
            with pytest.raises(InvalidFilterError, match=rf"filters\['{key}'\] contains"):
                tracker.list_experiments({key: name})
        with pytest.raises(InvalidInputError, match="name contains"):
            tracker.start_experiment(name)
        return
    assert all(e.name == name for e in tracker.list_experiments({"name": name}))
    assert tracker.list_experiments({"project": name + "-none"}) == []


def test_nul_is_refused_in_names_kept_in_json_and_escaped_in_error_text(
    tracker: ExperimentTracker, storage: Storage
) -> None:
    count = len(tracker.list_experiments())
    for bad, message in (
        ({"components": [{"name": "a\x00"}]}, "contains a NUL character"),
        ({"components": [{"name": "a", "stage": "\x00"}]}, "contains a NUL character"),
        ({"pipeline_config": {"model": {"path": "x\udc80"}}}, "a lone surrogate"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            tracker.start_experiment("nul", **bad)
    with pytest.raises(ConfigurationError, match="project_name contains a NUL"):
        ExperimentTracker(storage.uri, project_name="p\x00")
    assert len(tracker.list_experiments()) == count  # nothing was written

    # Inside JSON values NUL is data like any other, on both backends.
    config = {"model": {"path": "x\x00y"}, "nul": "\x00"}
    kept = tracker.start_experiment("nul-json", tags={"k": "\x00"}, pipeline_config=config)
    assert tracker.get_experiment(kept).pipeline_config == config
    assert [e.id for e in tracker.list_experiments({"tags": {"k": "\x00"}})] == [kept]
    tracker.delete_experiments([kept])

    # A free-text error from user code is kept, NUL made visible: the end is never lost.
    experiment_id = tracker.start_experiment("nul-error")
    tracker.end_experiment(experiment_id, "FAILED", error="bad byte \x00 in \udc80put")
    assert tracker.get_experiment(experiment_id).error == "bad byte \\x00 in \\udc80put"
    tracker.log_requests(
        experiment_id, [RequestRecord(0, datetime.now(UTC), 1.0, None, error="\x00!")]
    )
    assert [r.error for r in tracker.list_requests(experiment_id)] == ["\\x00!"]
    tracker.delete_experiments([experiment_id])


def test_the_schema_survived(tracker: ExperimentTracker, storage: Storage) -> None:
    for table in ("experiments", "experiment_tags", "pipeline_components", "requests"):
        assert storage.has_table(table), table
    if storage.path is not None:
        assert storage.query("PRAGMA integrity_check") == [("ok",)]
    assert len(_bystanders(tracker)) == 3
