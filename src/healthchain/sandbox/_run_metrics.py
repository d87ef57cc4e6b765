"""What a run measured: the metrics every tracked run logs when it ends, and score means."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from healthchain.tracking._records import nearest_rank

if TYPE_CHECKING:
    from ._client import RequestOutcome

__all__ = ["AUTOMATIC_METRICS", "run_metrics", "score_means"]

AUTOMATIC_METRICS = (
    "requests",
    "failures",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "requests_per_s",
)
"""The metrics every run logs; no score may take one of these names."""


def run_metrics(
    outcomes: Sequence[RequestOutcome], scores: Iterable[Mapping[str, float]] = ()
) -> dict[str, float]:
    """The run's metrics: :data:`AUTOMATIC_METRICS`, then each score's mean.

    ``requests`` counts the finished requests and ``failures`` those that failed (the
    tracker's rule). Latency percentiles are nearest-rank over every finished request,
    as ``request_stats`` computes them, and ``requests_per_s`` is requests over the time
    from the first request sent to the last response read; the four are left out when
    no request finished.
    """
    metrics: dict[str, float] = {
        "requests": len(outcomes),
        "failures": sum(not outcome.ok for outcome in outcomes),
    }
    if outcomes:
        latencies = sorted(outcome.latency_ms for outcome in outcomes)
        for name, fraction in (
            ("latency_p50_ms", 0.50),
            ("latency_p95_ms", 0.95),
            ("latency_p99_ms", 0.99),
        ):
            metrics[name] = nearest_rank(latencies, fraction)
        first = min(outcome.start_time.timestamp() for outcome in outcomes)
        last = max(o.start_time.timestamp() + o.latency_ms / 1000.0 for o in outcomes)
        if last > first:
            metrics["requests_per_s"] = len(outcomes) / (last - first)
    metrics.update(score_means(scores))
    return metrics


def score_means(scores: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Each score's mean over the requests that have it, NaN values left out (a scorer
    returns NaN for "does not apply"); NaN when every value was NaN."""
    values: dict[str, list[float]] = {}
    for request_scores in scores:
        for name, value in request_scores.items():
            values.setdefault(name, []).append(value)
    means: dict[str, float] = {}
    for name, all_values in values.items():
        numbers = [value for value in all_values if not math.isnan(value)]
        means[name] = _mean(numbers) if numbers else math.nan
    return means


def _mean(numbers: list[float]) -> float:
    try:
        return math.fsum(numbers) / len(numbers)
    except ValueError:  # fsum refuses inf + -inf, whose mean is NaN
        return math.nan
