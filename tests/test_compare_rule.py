"""The one rule for the best of several runs' metric values, and for values that differ."""

from __future__ import annotations

import math

import pytest

from healthchain._compare import best_of, differs, lower_is_better


@pytest.mark.parametrize(
    ("key", "lower"),
    [
        ("acc", False),
        ("f1", False),
        ("requests_per_s", False),
        ("latency_p95_ms", True),
        ("val_loss", True),
        ("Error", True),
        ("failures", True),
        ("duration_ms", True),
    ],
)
def test_lower_is_better_for_times_losses_and_errors(key: str, lower: bool) -> None:
    assert lower_is_better(key) is lower


def test_best_of_marks_every_tie_and_never_nan_or_missing() -> None:
    assert best_of("acc", [0.5, 0.9, None, 0.9, math.nan]) == {1, 3}
    assert best_of("loss", [0.5, 0.9, None, 0.2, math.nan]) == {3}
    assert best_of("loss", [None, math.nan]) == set()
    assert best_of("acc", []) == set()
    assert best_of("acc", [-math.inf, 1.0]) == {1}


def test_differs_counts_a_missing_value_as_one() -> None:
    assert not differs([1, 1, 1])
    assert differs([1, 1, "1"])
    assert differs(["—", 1])
    assert not differs([])
    assert not differs([{"a": [1]}, {"a": [1]}])
