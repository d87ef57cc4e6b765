"""Runs side by side: which values differ, and which run's metric is best.

The command line's ``experiments compare`` and the dashboard's compare page both use
these, so "best" and "differs" mean the same in both; this module sits below both and
imports no web stack.

Best: higher is better, unless the metric's key ends in one of
:data:`LOWER_IS_BETTER_SUFFIXES` (latencies, losses, errors, failures). Only finite
values take part; when fewer than two runs have one, or all are equal, none is best.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "LOWER_IS_BETTER_SUFFIXES",
    "MISSING",
    "MetricRow",
    "ValueRow",
    "best_indices",
    "compare_metrics",
    "compare_values",
    "differs",
    "lower_is_better",
]

LOWER_IS_BETTER_SUFFIXES = ("_ms", "loss", "error", "errors", "failures")
"""Metric keys ending in one of these are better lower (``latency_p95_ms``, ``val_loss``)."""


class _Missing:
    """The value of a key a run does not have; shown as an empty cell."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Stands in for a param, tag or metric a run does not have."""


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of metric ``key`` is the better one."""
    return key.lower().endswith(LOWER_IS_BETTER_SUFFIXES)


def best_indices(key: str, values: Sequence[float | None]) -> frozenset[int]:
    """Positions in ``values`` (one per run, None if the run lacks the metric) of the best.

    Ties are all best; NaN, infinities and None never are. Empty when fewer than two
    finite values, or all of them equal: there is nothing to choose between.
    """
    finite = {i: v for i, v in enumerate(values) if v is not None and math.isfinite(v)}
    if len(finite) < 2 or len(set(finite.values())) == 1:
        return frozenset()
    best = min(finite.values()) if lower_is_better(key) else max(finite.values())
    return frozenset(i for i, v in finite.items() if v == best)


def _canonical(value: object) -> object:
    if value is MISSING:
        return value
    # JSON text: 1 and True and 1.0 are different values, {"a": 1, "b": 2} in any order
    # is one
    return json.dumps(value, sort_keys=True, default=repr)


def differs(values: Sequence[object]) -> bool:
    """Whether the runs' values (:data:`MISSING` where a run lacks the key) are not all
    the same; a key some runs lack differs."""
    return len(set(map(_canonical, values))) > 1


class ValueRow(NamedTuple):
    """One key of params, tags or pipeline config across runs."""

    key: str
    values: tuple[Any, ...]
    """One per run, in the runs' order; :data:`MISSING` where a run lacks the key."""
    differs: bool


class MetricRow(NamedTuple):
    """One metric's latest values across runs."""

    key: str
    values: tuple[float | None, ...]
    """One per run, in the runs' order; None where a run lacks the metric."""
    best: frozenset[int]
    """Positions of the best values (see :func:`best_indices`)."""


def compare_values(mappings: Sequence[Mapping[str, Any] | None]) -> list[ValueRow]:
    """Every key of any run's mapping (params, tags or pipeline config), sorted."""
    present = [mapping or {} for mapping in mappings]
    keys = sorted({key for mapping in present for key in mapping})
    rows = []
    for key in keys:
        values = tuple(mapping.get(key, MISSING) for mapping in present)
        rows.append(ValueRow(key, values, differs(values)))
    return rows


def compare_metrics(metrics: Sequence[Mapping[str, float]]) -> list[MetricRow]:
    """Every metric key of any run, sorted, with each run's latest value and the best."""
    keys = sorted({key for mapping in metrics for key in mapping})
    rows = []
    for key in keys:
        values = tuple(mapping.get(key) for mapping in metrics)
        rows.append(MetricRow(key, values, best_indices(key, values)))
    return rows
