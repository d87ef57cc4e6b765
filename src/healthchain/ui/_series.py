"""Metric histories and latencies as chart data: aligned, downsampled on the server.

A chart never receives every point of a long history: past :data:`MAX_POINTS` steps the
step range is cut into buckets and each run keeps its lowest and highest value in each,
so spikes survive while the payload stays small. Non-finite values become gaps (JSON
has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from healthchain.tracking import MetricPoint, RequestRecord

__all__ = ["MAX_POINTS", "SERIES_COLORS", "latency_histograms", "metric_series"]

MAX_POINTS = 2000
"""The most x positions a metric chart is sent (two per bucket once downsampled)."""

# Okabe-Ito, then darker tones: ten runs, told apart without relying on red/green.
SERIES_COLORS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#000000",
    "#F0E442",
    "#6A3D9A",
    "#8C564B",
)


def _by_step(points: Sequence[MetricPoint]) -> dict[int, float | None]:
    # Points come ordered by step then time: the last one of a step is its value.
    return {p.step: p.value if math.isfinite(p.value) else None for p in points}


def metric_series(
    histories: Sequence[Sequence[MetricPoint]], limit: int = MAX_POINTS
) -> dict[str, Any]:
    """One x axis of steps and each history's values on it (None where it has none).

    ``{"x": [...], "ys": [[...], ...], "downsampled": bool}``; at most ``limit`` x values.
    """
    runs = [_by_step(h) for h in histories]
    steps = sorted(set().union(*runs))
    if len(steps) <= limit:
        return {
            "x": steps,
            "ys": [[run.get(s) for s in steps] for run in runs],
            "downsampled": False,
        }
    return _bucketed(runs, steps[0], steps[-1], limit // 2)


def _bucketed(
    runs: Sequence[dict[int, float | None]], low: int, high: int, buckets: int
) -> dict[str, Any]:
    """Each run's lowest and highest value per bucket of steps, at two x per bucket."""
    width = (high - low + 1) / buckets
    ys: list[list[float | None]] = []
    used = [False] * (2 * buckets)
    for run in runs:
        # Per bucket: (step, value) of the lowest and of the highest value.
        lows: list[tuple[int, float] | None] = [None] * buckets
        highs: list[tuple[int, float] | None] = [None] * buckets
        for step, value in run.items():
            if value is None:
                continue
            b = min(buckets - 1, int((step - low) / width))
            if (lo := lows[b]) is None or value < lo[1]:
                lows[b] = (step, value)
            if (hi := highs[b]) is None or value > hi[1]:
                highs[b] = (step, value)
        y: list[float | None] = [None] * (2 * buckets)
        for b, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
            if lo is None or hi is None:
                continue
            first, second = (lo, hi) if lo[0] <= hi[0] else (hi, lo)
            y[2 * b], y[2 * b + 1] = first[1], second[1]
            used[2 * b] = used[2 * b + 1] = True
        ys.append(y)
    keep = [i for i, u in enumerate(used) if u]
    x = [low + (i // 2 + (i % 2) / 2) * width for i in keep]
    return {"x": x, "ys": [[y[i] for i in keep] for y in ys], "downsampled": True}


def latency_histograms(
    runs: Sequence[Sequence[RequestRecord]], max_bins: int = 30
) -> dict[str, Any]:
    """Several runs' latencies counted in the same bins, for overlaid histograms.

    ``{"x": bin centres, "counts": [[per bin] per run], "width": bin width}``; the bin
    count follows the square-root rule on the largest run, capped at ``max_bins``.
    """
    latencies = [[r.latency_ms for r in records] for records in runs]
    every = [v for run in latencies for v in run]
    if not every:
        return {"x": [], "counts": [[] for _ in runs], "width": 0.0}
    low, high = min(every), max(every)
    largest = max(len(run) for run in latencies)
    bins = max(1, min(max_bins, math.ceil(math.sqrt(largest))))
    width = (high - low) / bins or 1.0
    counts = []
    for run in latencies:
        count = [0] * bins
        for v in run:
            count[min(bins - 1, int((v - low) / width))] += 1
        counts.append(count)
    return {"x": [low + (i + 0.5) * width for i in range(bins)], "counts": counts, "width": width}
