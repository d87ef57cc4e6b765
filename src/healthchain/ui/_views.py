"""The dashboard's chart data and request verdicts: pure functions over tracker records.

Times, durations and JSON records, which the command line shows too, are in
``healthchain._formatting``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from healthchain.tracking import Experiment, ExperimentStatus, RequestRecord

__all__ = ["STATUS_COLORS", "duration_points", "is_failure", "latency_histogram"]

# Colour-blind-safe (Okabe-Ito) hues; the same in the table badges and the charts.
STATUS_COLORS = {
    ExperimentStatus.RUNNING: "#0072B2",
    ExperimentStatus.COMPLETED: "#009E73",
    ExperimentStatus.FAILED: "#D55E00",
    ExperimentStatus.INTERRUPTED: "#E69F00",
}


def duration_points(experiments: Iterable[Experiment]) -> dict[str, Any]:
    """Durations over start time for a uPlot chart: one x axis, one series per status.

    ``x`` is ascending epoch seconds; each status's ``y`` holds the duration in seconds
    where that experiment has the status, null elsewhere. RUNNING ones have no duration
    yet and are left out.
    """
    finished = sorted(
        (e for e in experiments if e.end_time is not None), key=lambda e: e.start_time
    )
    statuses = [s for s in ExperimentStatus if s is not ExperimentStatus.RUNNING]
    series: dict[str, list[float | None]] = {s.value: [] for s in statuses}
    x: list[float] = []
    names: list[str] = []
    for experiment in finished:
        x.append(experiment.start_time.timestamp())
        names.append(experiment.name)
        seconds = experiment.duration.total_seconds()  # type: ignore[union-attr]
        for status in statuses:
            series[status.value].append(seconds if experiment.status is status else None)
    return {
        "x": x,
        "names": names,
        "series": [
            {"label": s.value, "color": STATUS_COLORS[s], "y": series[s.value]}
            for s in statuses
            if any(v is not None for v in series[s.value])
        ],
    }


def is_failure(record: RequestRecord) -> bool:
    """A request failed: ``record.failed``, the tracker's one rule (kept as a public name)."""
    return record.failed


def latency_histogram(records: Sequence[RequestRecord], max_bins: int = 30) -> dict[str, Any]:
    """Request latencies binned for a bar chart: bin centres, all and failed counts per bin.

    The bin count follows the square-root rule, capped at ``max_bins``.
    """
    if not records:
        return {"x": [], "total": [], "failed": [], "width": 0.0}
    latencies = [r.latency_ms for r in records]
    low, high = min(latencies), max(latencies)
    bins = max(1, min(max_bins, math.ceil(math.sqrt(len(latencies)))))
    width = (high - low) / bins or 1.0
    total = [0] * bins
    failed = [0] * bins
    for record in records:
        i = min(bins - 1, int((record.latency_ms - low) / width))
        total[i] += 1
        if record.failed:
            failed[i] += 1
    return {
        "x": [low + (i + 0.5) * width for i in range(bins)],
        "total": total,
        "failed": failed,
        "width": width,
    }
