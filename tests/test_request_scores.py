"""Per-request scores (``RequestRecord.scores``): stored with the request row, read back
exactly (NaN and +/-inf too) on both backends, refused with nothing written when bad, and
read as none when another writer left something else in the column."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from helpers.storage import Storage

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentTracker,
    InvalidInputError,
    RequestRecord,
)

SCORES: dict[str, float] = {
    "plain": 0.25,
    "whole": 3.0,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "negative": -2.5,
    "not applicable": math.nan,
    "up": math.inf,
    "down": -math.inf,
    "naïve ✓": 1.0,
}


def _same(got: dict[str, float] | None, want: dict[str, float]) -> bool:
    """Equal, NaN included (NaN != NaN), and every value a float."""
    return (
        got is not None
        and list(got) == list(want)
        and all(type(v) is float for v in got.values())
        and all(
            (math.isnan(w) and math.isnan(g)) or g == w
            for g, w in zip(got.values(), want.values(), strict=True)
        )
    )


@pytest.mark.anyio
async def test_scores_round_trip_exactly(any_storage_uri: str) -> None:
    now = datetime.now(UTC)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment()
        await tracker.log_requests(
            run,
            [
                RequestRecord(0, now, 1.0, 200, None, SCORES),
                RequestRecord(1, now, 2.0, 200, None, {"integer": 7}),
                RequestRecord(2, now, 3.0, 200, None, {}),
                RequestRecord(3, now, 4.0, 500, "HTTP 500: boom"),
            ],
        )
        records = await tracker.list_requests(run)
    assert _same(records[0].scores, SCORES)
    assert _same(records[1].scores, {"integer": 7.0})
    assert records[2].scores == {}
    assert records[3].scores is None


def test_scores_are_stored_as_json_with_nan_as_null_and_infinities_as_text(
    any_storage: Storage,
) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        run = tracker.start_experiment()
        scores = {"a": 0.5, "n": math.nan, "i": math.inf, "m": -math.inf}
        tracker.log_requests(run, [RequestRecord(0, datetime.now(UTC), 1.0, 200, None, scores)])
    (stored,) = any_storage.query("SELECT scores FROM requests")
    assert stored[0].replace(" ", "") == '{"a":0.5,"n":null,"i":"inf","m":"-inf"}'


BAD_SCORES: list[tuple[Any, str]] = [
    ([("a", 1.0)], r"records\[0\]\.scores must be a mapping of score names to numbers, got list"),
    ({"": 1.0}, r"records\[0\]\.scores: score name must be a non-empty string .*, got str ''"),
    ({3: 1.0}, r"score name must be a non-empty string naming the metric, got int 3"),
    ({"a\x00b": 1.0}, r"score name 'a\\x00b' contains a NUL character"),
    ({"a\ud800": 1.0}, r"lone surrogate"),
    ({"x" * 2049: 1.0}, r"takes 2,049 bytes of UTF-8; a metric key may take at most 2,048"),
    ({"ok": True}, r"records\[0\]\.scores\['ok'\] must be an int or a float, got bool True"),
    ({"ok": "0.5"}, r"records\[0\]\.scores\['ok'\] must be an int or a float, got str '0\.5'"),
    ({"ok": None}, r"must be an int or a float, got NoneType None"),
    ({"ok": 10**400}, r"records\[0\]\.scores\['ok'\] 10+\.\.\.0+ is too large for a float"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("scores", "message"), BAD_SCORES)
async def test_bad_scores_are_refused_and_nothing_is_written(
    any_storage_uri: str, scores: Any, message: str
) -> None:
    now = datetime.now(UTC)
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        run = await tracker.start_experiment()
        good = RequestRecord(1, now, 1.0, 200, None, {"ok": 1.0})
        with pytest.raises(InvalidInputError, match=message):
            await tracker.log_requests(run, [RequestRecord(0, now, 1.0, 200, None, scores), good])
        assert await tracker.list_requests(run) == []


@pytest.mark.parametrize(
    "stored",
    ["[1, 2]", '{"a": "yes"}', '"text"', "null", '{"a": {"b": 1}}', '{"a": true}'],
)
def test_scores_another_writer_left_read_as_none(
    any_storage: Storage, caplog: pytest.LogCaptureFixture, stored: str
) -> None:
    now = datetime.now(UTC)
    with ExperimentTracker(any_storage.uri) as tracker:
        run = tracker.start_experiment()
        tracker.log_requests(
            run, [RequestRecord(i, now, 1.0 + i, 200, None, {"a": 0.5}) for i in range(3)]
        )
    cast = "" if any_storage.kind == "sqlite" else "::json"
    any_storage.query(f"UPDATE requests SET scores = ?{cast} WHERE seq = 1", stored)
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(any_storage.uri) as tracker,
    ):
        records = tracker.list_requests(run)
    assert [(r.index, r.scores) for r in records] == [(0, {"a": 0.5}), (1, None), (2, {"a": 0.5})]
    assert f"experiment {run}: request 1: its scores" in caplog.text
    assert "cannot be read; shown as none" in caplog.text


def test_integer_scores_another_writer_left_read_as_floats(sqlite_storage: Storage) -> None:
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        run = tracker.start_experiment()
        tracker.log_requests(run, [RequestRecord(0, datetime.now(UTC), 1.0, 200)])
    sqlite_storage.query("""UPDATE requests SET scores = '{"a": 2}'""")
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        (record,) = tracker.list_requests(run)
    assert record.scores == {"a": 2.0}
    assert type(record.scores["a"]) is float
