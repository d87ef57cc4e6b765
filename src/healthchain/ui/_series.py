"""Metric histories and latencies as chart data: aligned, downsampled on the server.

A chart never receives every point of a long history: past :data:`MAX_POINTS` steps the
step range is cut into buckets and each run keeps its lowest and highest value in each,
so spikes survive while the payload stays small. Non-finite values become gaps (JSON
has no NaN).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from healthchain.tracking import RequestRecord

__all__ = ["MAX_POINTS", "OVERLAID_POINTS", "SERIES_COLORS", "latency_histograms", "metric_series"]

MAX_POINTS = 2000
"""The most x positions a metric chart is sent (two per bucket once downsampled)."""
OVERLAID_POINTS = 1000
"""The most x positions of a chart overlaying several runs (the compare page's): 500
buckets, each run's lowest and highest in each, still hold every spike, and the chart is
narrower than 1,000 px; with ten runs, half the points are half the page's chart cost."""

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


def _by_step(points: Sequence[tuple[int, float]]) -> dict[int, float | None]:
    # Points come ordered by step then time: the last one of a step is its value.
    finite = math.isfinite
    return {step: value if finite(value) else None for step, value in points}


def metric_series(
    histories: Sequence[Sequence[tuple[int, float]]], limit: int = MAX_POINTS
) -> dict[str, Any]:
    """One x axis of steps and each history's values on it (None where it has none).

    ``histories`` are ``(step, value)`` pairs by step, as ``get_metric_values`` reads them.
    ``{"x": [...], "ys": [[...], ...], "downsampled": bool}``; at most ``limit`` x values.
    """
    if sum(len(h) for h in histories) <= limit:
        runs = [_by_step(h) for h in histories]
        steps = sorted(set().union(*runs))
        if len(steps) <= limit:
            ys = [[run.get(s) for s in steps] for run in runs]
            return {"x": steps, "ys": ys, "downsampled": False}
    return _bucketed(histories, limit // 2)


def _bucketed(histories: Sequence[Sequence[tuple[int, float]]], buckets: int) -> dict[str, Any]:
    """Each run's lowest and highest value per bucket of steps, at two x per bucket.

    Per bucket, a run's points are one slice of its step-ordered list, found by bisection;
    builtin ``min``/``max`` then scan it at C speed (a 10,000-point history in about a
    millisecond, where a Python loop over the points took ten).
    """
    step_of, value_of = itemgetter(0), itemgetter(1)
    columns = [(list(map(step_of, h)), list(map(value_of, h))) for h in histories]
    low = min((c[0][0] for c in columns if c[0]), default=0)
    high = max((c[0][-1] for c in columns if c[0]), default=0)
    width = (high - low + 1) / buckets
    edges = [low + math.ceil(b * width) for b in range(buckets + 1)]
    ys: list[list[float | None]] = []
    used = [False] * (2 * buckets)
    for steps, values in columns:
        finite = all(map(math.isfinite, values))
        y: list[float | None] = [None] * (2 * buckets)
        start = bisect_left(steps, edges[0])
        for b in range(buckets):
            stop = bisect_left(steps, edges[b + 1], start)
            if stop > start:
                picked = _extremes(values[start:stop], finite)
                if picked is not None:
                    y[2 * b], y[2 * b + 1] = picked
                    used[2 * b] = used[2 * b + 1] = True
            start = stop
        ys.append(y)
    keep = [i for i, u in enumerate(used) if u]
    x = [low + (i // 2 + (i % 2) / 2) * width for i in keep]
    return {"x": x, "ys": [[y[i] for i in keep] for y in ys], "downsampled": True}


def _extremes(values: Sequence[float], finite: bool) -> tuple[float, float] | None:
    """The lowest and highest of ``values`` in the order they occur; None if none is finite."""
    if not finite:
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return None
    lo, hi = min(values), max(values)
    return (lo, hi) if values.index(lo) <= values.index(hi) else (hi, lo)


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
