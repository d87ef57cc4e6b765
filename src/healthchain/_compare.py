"""Which of several runs did best on a metric, and which settings differ: the one rule
the command line's ``experiments compare`` and the dashboard's compare page share.

"Best" is the highest value, unless the key names a cost (see :data:`LOWER_IS_BETTER`),
where it is the lowest. NaN is never best; ties are all best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["LOWER_IS_BETTER", "best_of", "differs", "lower_is_better"]

LOWER_IS_BETTER = ("_ms", "loss", "error", "errors", "failures", "latency")
"""Key endings (case-insensitive) for which a lower value is better: times in ms, losses,
error counts. Every other metric is better higher (accuracy, scores, throughput)."""


def lower_is_better(key: str) -> bool:
    """True when a lower value of metric ``key`` is the better one."""
    return key.lower().endswith(LOWER_IS_BETTER)


def best_of(key: str, values: Sequence[float | None]) -> set[int]:
    """The positions in ``values`` holding the best value of metric ``key``.

    None (a run without the metric) and NaN never count; empty when no value does.
    """
    candidates = [(i, v) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not candidates:
        return set()
    pick = min if lower_is_better(key) else max
    best = pick(v for _, v in candidates)
    return {i for i, v in candidates if v == best}


_MISSING = object()


def differs(values: Sequence[Any]) -> bool:
    """True when the values are not all equal (a run without the value counts as one)."""
    first = values[0] if values else _MISSING
    return any(v != first for v in values[1:])
