"""Which runs differ and which is best: the rule the CLI and the dashboard share."""

from __future__ import annotations

import math

import pytest

from healthchain._compare import (
    MISSING,
    MetricRow,
    ValueRow,
    best_indices,
    compare_metrics,
    compare_values,
    differs,
    lower_is_better,
)


@pytest.mark.parametrize(
    ("key", "lower"),
    [
        ("acc", False),
        ("requests_per_s", False),
        ("score_relevance", False),
        ("latency_p95_ms", True),
        ("val_loss", True),
        ("Loss", True),
        ("error", True),
        ("parse_errors", True),
        ("failures", True),
    ],
)
def test_lower_is_better(key: str, lower: bool) -> None:
    assert lower_is_better(key) is lower


def test_best_is_highest_unless_lower_is_better() -> None:
    assert best_indices("acc", [0.5, 0.9, None, 0.7]) == {1}
    assert best_indices("latency_p95_ms", [12.0, 9.5, 30.0]) == {1}
    assert best_indices("acc", [0.9, 0.5, 0.9]) == {0, 2}  # ties are all best


def test_no_best_without_a_choice() -> None:
    assert best_indices("acc", [0.5]) == set()
    assert best_indices("acc", [0.5, None]) == set()
    assert best_indices("acc", [0.5, 0.5]) == set()
    assert best_indices("acc", []) == set()


def test_nan_and_infinities_are_never_best() -> None:
    assert best_indices("acc", [math.nan, 0.1, math.inf, 0.2]) == {3}
    assert best_indices("loss", [-math.inf, 0.3, 0.2, math.nan]) == {2}


def test_differs() -> None:
    assert not differs([1, 1, 1])
    assert differs([1, 2])
    assert differs([1, True])  # equal in Python, not the same value
    assert differs([1, 1.0])
    assert not differs([{"a": 1, "b": [2]}, {"b": [2], "a": 1}])
    assert differs(["x", MISSING])
    assert not differs([MISSING, MISSING])


def test_compare_values_lines_up_every_key() -> None:
    rows = compare_values([{"model": "a", "epochs": 3}, None, {"model": "a", "lr": 0.1}])
    assert rows == [
        ValueRow("epochs", (3, MISSING, MISSING), True),
        ValueRow("lr", (MISSING, MISSING, 0.1), True),
        ValueRow("model", ("a", MISSING, "a"), True),
    ]
    assert compare_values([{"model": "a"}, {"model": "a"}]) == [
        ValueRow("model", ("a", "a"), False)
    ]
    assert compare_values([{}, None]) == []


def test_compare_metrics_marks_the_best() -> None:
    rows = compare_metrics([{"acc": 0.5, "latency_p95_ms": 20.0}, {"acc": 0.8}])
    assert rows == [
        MetricRow("acc", (0.5, 0.8), frozenset({1})),
        MetricRow("latency_p95_ms", (20.0, None), frozenset()),
    ]
    assert repr(MISSING) == "MISSING"
