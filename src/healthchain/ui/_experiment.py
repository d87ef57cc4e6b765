"""The experiment page, and the small JSON document its script polls while the run runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from healthchain._formatting import format_duration, format_time
from healthchain.tracking import (
    Experiment,
    ExperimentNotFoundError,
    ExperimentStatus,
    RequestRecord,
)

from ._pages import Dashboard, error_page, gather, json_response, render
from ._series import MAX_POINTS, SERIES_COLORS, metric_series
from ._views import latency_histogram

__all__ = [
    "FAILURES_SHOWN",
    "LIVE_POLL_MS",
    "MAX_CHARTS",
    "experiment_live",
    "experiment_page",
    "format_latency",
    "format_metric",
    "metric_charts",
]

FAILURES_SHOWN = 100
"""The experiment page lists at most this many failed requests."""
MAX_CHARTS = 24
"""Metric keys charted on one page (alphabetically first); the table lists them all."""
LIVE_POLL_MS = 1000
"""How often a RUNNING experiment's page asks for news, in milliseconds."""


def format_metric(value: float) -> str:
    """A metric value in at most 6 significant digits; ``nan`` and ``inf`` as such."""
    return f"{value:.6g}"


def format_latency(value: float | None) -> str:
    """Milliseconds to one decimal, or a dash when there were no requests."""
    return "—" if value is None else f"{value:.1f}"


async def metric_charts(
    dashboard: Dashboard,
    experiments: Sequence[Experiment],
    keys: Sequence[str],
    limit: int = MAX_POINTS,
) -> list[dict[str, Any]]:
    """One chart per key: every experiment's history of it on one step axis, downsampled
    to at most ``limit`` x positions."""
    tracker = dashboard.tracker

    async def history(experiment: Experiment, key: str) -> list[tuple[int, float]]:
        if key not in experiment.metrics:
            return []
        return await tracker.get_metric_values(experiment.id, key)

    # One gather over every (key, run) pair: each read holds the page's limiter alone.
    pairs = [(key, e) for key in keys for e in experiments]
    read = await gather([partial(history, e, key) for key, e in pairs], dashboard.reads)
    runs = len(experiments)

    def build() -> list[dict[str, Any]]:  # every chart in one trip to a worker thread
        return [
            {"key": key, **metric_series(read[n * runs : (n + 1) * runs], limit)}
            for n, key in enumerate(keys)
        ]

    return await anyio.to_thread.run_sync(build)


def _score_summary(records: Sequence[RequestRecord]) -> list[dict[str, Any]]:
    """Per score name: how many requests it scored, and its finite values' mean/min/max."""
    values: dict[str, list[float]] = {}
    for record in records:
        for name, value in (record.scores or {}).items():
            values.setdefault(name, []).append(value)
    summary = []
    for name in sorted(values):
        finite = [v for v in values[name] if math.isfinite(v)]
        summary.append(
            {
                "name": name,
                "count": len(values[name]),
                "mean": sum(finite) / len(finite) if finite else None,
                "min": min(finite, default=None),
                "max": max(finite, default=None),
            }
        )
    return summary


def _scores_by_latency(records: Sequence[RequestRecord], names: Sequence[str]) -> dict[str, Any]:
    """Each score against its request's latency (at most ``MAX_POINTS`` requests, evenly
    spread over the latency order), for a scatter chart."""
    scored = sorted((r for r in records if r.scores), key=lambda r: r.latency_ms)
    stride = max(1, math.ceil(len(scored) / MAX_POINTS))
    shown = scored[::stride]
    ys = []
    for name in names:
        y = []
        for r in shown:
            v = (r.scores or {}).get(name)
            y.append(v if v is not None and math.isfinite(v) else None)
        ys.append(y)
    colors = [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(len(names))]
    return {"x": [r.latency_ms for r in shown], "names": list(names), "ys": ys, "colors": colors}


async def experiment_page(request: Request) -> Response:
    """``/experiments/{id}``: facts, params, metrics and their charts, requests and scores."""
    dashboard: Dashboard = request.state.dashboard
    experiment_id = request.path_params["experiment_id"]
    tracker = dashboard.tracker
    try:
        experiment = await tracker.get_experiment(experiment_id)
        stats = await tracker.request_stats(experiment_id)
        records = await tracker.list_requests(experiment_id)
    except ExperimentNotFoundError as exc:
        return error_page(request, "Experiment not found", str(exc), 404)
    keys = sorted(experiment.metrics)
    charts = [
        {**c, "labels": [experiment.name], "colors": SERIES_COLORS[:1]}
        for c in await metric_charts(dashboard, [experiment], keys[:MAX_CHARTS])
    ]
    failures = [r for r in records if r.failed]
    scores = _score_summary(records)
    running = experiment.status is ExperimentStatus.RUNNING
    return render(
        request,
        "experiment.html",
        {
            "experiment": experiment,
            "stale": experiment.is_stale(),
            "running": running,
            "elapsed": _elapsed(experiment),
            "poll_ms": LIVE_POLL_MS,
            "stats": stats,
            "histogram": latency_histogram(records),
            "failures": failures[:FAILURES_SHOWN],
            "failures_hidden": max(0, len(failures) - FAILURES_SHOWN),
            "metric_keys": keys,
            "charts": charts,
            "charts_hidden": max(0, len(keys) - MAX_CHARTS),
            "scores": scores,
            "score_chart": _scores_by_latency(records, [s["name"] for s in scores]),
        },
    )


def _elapsed(experiment: Experiment) -> str:
    if experiment.duration is not None:
        return format_duration(experiment.duration)
    return format_duration(datetime.now(UTC) - experiment.start_time)


async def experiment_live(request: Request) -> Response:
    """``/experiments/{id}/live``: what a RUNNING run's page refreshes, as JSON."""
    dashboard: Dashboard = request.state.dashboard
    experiment_id = request.path_params["experiment_id"]
    try:
        experiment = await dashboard.tracker.get_experiment(experiment_id)
        stats = await dashboard.tracker.request_stats(experiment_id)
    except ExperimentNotFoundError as exc:
        return json_response({"error": str(exc)}, 404)
    return json_response(
        {
            "status": experiment.status.value,
            "running": experiment.status is ExperimentStatus.RUNNING,
            "stale": experiment.is_stale(),
            "elapsed": _elapsed(experiment),
            "ended": format_time(experiment.end_time) or None,
            "heartbeat": format_time(experiment.heartbeat_at) or None,
            "requests": stats.count,
            "failures": stats.failures,
            "p50": format_latency(stats.p50_ms),
            "p95": format_latency(stats.p95_ms),
            "metrics": {k: format_metric(v) for k, v in sorted(experiment.metrics.items())},
        }
    )
