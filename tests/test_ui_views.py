"""The pure helpers the command line and the dashboard share: filters, formatting, chart data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthchain.tracking import Experiment, ExperimentStatus, InvalidFilterError, RequestRecord
from healthchain.ui import TagSyntaxError, build_filters, format_duration, format_tag, parse_tag
from healthchain.ui._views import duration_points, latency_histogram

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env=prod", ("env", "prod")),
        ("url=a=b", ("url", "a=b")),
        ("empty=", ("empty", "")),
        ("epochs:=3", ("epochs", 3)),
        ("flag:=true", ("flag", True)),
        ('quoted:="3"', ("quoted", "3")),
        ("ids:=[1, 2]", ("ids", [1, 2])),
    ],
)
def test_parse_tag_round_trips(text: str, expected: tuple[str, object]) -> None:
    assert parse_tag(text) == expected
    assert parse_tag(format_tag(*expected)) == expected


@pytest.mark.parametrize("text", ["env", "=x", ":=3", "n:=three"])
def test_parse_tag_rejects_with_a_filter_error(text: str) -> None:
    with pytest.raises(TagSyntaxError, match=repr(text).replace("[", r"\[")) as info:
        parse_tag(text)
    assert isinstance(info.value, InvalidFilterError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, "[" * 65 + "]" * 65, "9" * 5000])
def test_parse_tag_refuses_json_too_deep_or_too_long_in_a_short_message(value: str) -> None:
    with pytest.raises(TagSyntaxError, match=r"characters\) is not a JSON value") as info:
        parse_tag("k:=" + value)
    assert len(str(info.value)) < 400


def test_build_filters() -> None:
    assert build_filters() == {}
    assert build_filters(project="p", statuses=["", "FAILED"], tags=["a=1", "b:=2"], name="n") == {
        "project": "p",
        "status": ["FAILED"],
        "tags": {"a": "1", "b": 2},
        "name": "n",
    }
    assert build_filters(tags=["a=1", "a=1"]) == {"tags": {"a": "1"}}
    with pytest.raises(TagSyntaxError, match="twice"):
        build_filters(tags=["a=1", "a=2"])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0042, "4.2 ms"),
        (0.42, "420 ms"),
        (4.2, "4.20 s"),
        (42.0, "42.0 s"),
        (125.0, "2m 05s"),
        (3720.0, "1h 02m"),
        (93600.0, "1d 02h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert format_duration(None) == ""


def experiment(i: int, status: ExperimentStatus, seconds: float | None) -> Experiment:
    start = T0 + timedelta(minutes=i)
    end = None if seconds is None else start + timedelta(seconds=seconds)
    return Experiment(f"id{i}", f"run{i}", "p", start, end, status, {}, None)


def test_duration_points_align_one_series_per_status() -> None:
    points = duration_points(
        [
            experiment(2, ExperimentStatus.FAILED, 3.0),
            experiment(0, ExperimentStatus.COMPLETED, 1.0),
            experiment(1, ExperimentStatus.RUNNING, None),
            experiment(3, ExperimentStatus.COMPLETED, 2.0),
        ]
    )
    assert points["x"] == [T0.timestamp(), (T0 + timedelta(minutes=2)).timestamp(),
                           (T0 + timedelta(minutes=3)).timestamp()]  # fmt: skip
    assert points["names"] == ["run0", "run2", "run3"]
    series = {s["label"]: s["y"] for s in points["series"]}
    assert series == {"COMPLETED": [1.0, None, 2.0], "FAILED": [None, 3.0, None]}
    assert duration_points([]) == {"x": [], "names": [], "series": []}


def record(
    i: int, latency: float, code: int | None = 200, error: str | None = None
) -> RequestRecord:
    return RequestRecord(i, T0, latency, code, error)


def test_latency_histogram_bins_and_failures() -> None:
    records = [record(i, float(i)) for i in range(100)]
    records[99] = record(99, 99.0, 500)
    records[0] = record(0, 0.0, None, "refused")
    histogram = latency_histogram(records)
    assert len(histogram["x"]) == 10  # square-root rule
    assert sum(histogram["total"]) == 100 and histogram["total"][-1] == 10
    assert histogram["failed"][0] == 1 and histogram["failed"][-1] == 1
    assert histogram["width"] == pytest.approx(9.9)


def test_latency_histogram_edge_cases() -> None:
    assert latency_histogram([]) == {"x": [], "total": [], "failed": [], "width": 0.0}
    same = latency_histogram([record(i, 5.0) for i in range(9)])
    assert same["total"][0] == 9 and sum(same["total"]) == 9 and same["width"] == 1.0
    capped = latency_histogram([record(i, float(i)) for i in range(10_000)])
    assert len(capped["x"]) == 30
