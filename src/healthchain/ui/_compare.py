"""The compare page, ``/compare?id=A&id=B[...]``: 2 to 10 runs side by side.

Params, tags and pipeline config in one table each, a row marked where the runs differ;
latest metrics with the best of each marked (the rule is ``healthchain._compare``'s,
shared with ``healthchain experiments compare``); each metric's histories overlaid in
one chart; the latency histograms overlaid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from healthchain._compare import MISSING, compare_metrics, compare_values, lower_is_better
from healthchain.tracking import (
    AmbiguousIdError,
    Experiment,
    ExperimentNotFoundError,
    InvalidInputError,
    RequestRecord,
)

from ._experiment import MAX_CHARTS, format_metric, metric_charts
from ._pages import Dashboard, error_page, gather, render
from ._series import OVERLAID_POINTS, SERIES_COLORS, latency_histograms

__all__ = ["MAX_COMPARED", "MIN_COMPARED", "compare_page"]

MIN_COMPARED = 2
MAX_COMPARED = 10
"""How many runs one compare page shows, at least and at most."""

_ABSENT = "—"


class _BadRequest(Exception):
    """The ids asked for cannot be compared: a 400 page with this message."""


async def _resolve(dashboard: Dashboard, texts: Sequence[str]) -> list[str]:
    """Each id or unique prefix as a whole id, in the order given."""
    if not MIN_COMPARED <= len(texts) <= MAX_COMPARED:
        raise _BadRequest(
            f"compare takes {MIN_COMPARED} to {MAX_COMPARED} experiment ids, got "
            f"{len(texts)}: {', '.join(map(repr, texts)) or 'none'}; pick runs in the list "
            "and press Compare, or write /compare?id=A&id=B"
        )
    try:
        found = await gather(
            [partial(dashboard.tracker.resolve_id, t) for t in texts], dashboard.reads
        )
    except (AmbiguousIdError, InvalidInputError) as exc:
        raise _BadRequest(str(exc)) from exc
    for i, (text, experiment_id) in enumerate(zip(texts, found, strict=True)):
        if experiment_id in found[:i]:
            raise _BadRequest(
                f"id {text!r} names experiment {experiment_id!r}, which is already compared; "
                "give each run once"
            )
    return found


def _rows(mappings: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """One row per key any run has: each run's value as text, and whether they differ."""
    return [
        {"key": row.key, "cells": [_text(v) for v in row.values], "differs": row.differs}
        for row in compare_values(mappings)
    ]


def _text(value: Any) -> str:
    if value is MISSING:
        return _ABSENT
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _metric_rows(experiments: Sequence[Experiment]) -> list[dict[str, Any]]:
    return [
        {
            "key": row.key,
            "lower_is_better": lower_is_better(row.key),
            "cells": [
                {"text": _ABSENT if v is None else format_metric(v), "best": i in row.best}
                for i, v in enumerate(row.values)
            ],
        }
        for row in compare_metrics([e.metrics for e in experiments])
    ]


def _config(experiment: Experiment) -> dict[str, Any]:
    config = dict(experiment.pipeline_config or {})
    if experiment.components:
        config["(components)"] = " → ".join(c.name for c in experiment.components)
    return config


async def compare_page(request: Request) -> Response:
    """``/compare``: 400 for a bad, ambiguous or repeated id or a wrong count, 404 for an
    unknown one, each page naming the id."""
    dashboard: Dashboard = request.state.dashboard
    tracker, reads = dashboard.tracker, dashboard.reads
    texts = [t.strip() for t in request.query_params.getlist("id") if t.strip()]
    try:
        ids = await _resolve(dashboard, texts)
        # One gather: each wave of reads waits for the reader threads once, not thrice.
        read: list[Any] = await gather(
            [
                *(partial(tracker.get_experiment, i) for i in ids),
                *(partial(tracker.list_requests, i) for i in ids),
                partial(tracker.abbreviate_ids, ids),
            ],
            reads,
        )
    except _BadRequest as exc:
        return error_page(request, "Cannot compare these runs", str(exc), 400)
    except ExperimentNotFoundError as exc:
        return error_page(request, "Experiment not found", str(exc), 404)
    count = len(ids)
    experiments: list[Experiment] = read[:count]
    records: list[list[RequestRecord]] = read[count : 2 * count]
    short: dict[str, str] = read[-1]
    labels = [f"{short[e.id]} {e.name}" for e in experiments]
    keys = sorted(set().union(*(e.metrics for e in experiments)))
    charts = await metric_charts(dashboard, experiments, keys[:MAX_CHARTS], OVERLAID_POINTS)
    histograms = await anyio.to_thread.run_sync(latency_histograms, records)
    colors = list(SERIES_COLORS[: len(experiments)])
    return render(
        request,
        "compare.html",
        {
            "runs": [
                {"experiment": e, "short_id": short[e.id], "color": c, "requests": len(r)}
                for e, c, r in zip(experiments, colors, records, strict=True)
            ],
            "params": _rows([e.params for e in experiments]),
            "tags": _rows([e.tags for e in experiments]),
            "config": _rows([_config(e) for e in experiments]),
            "metrics": _metric_rows(experiments),
            "charts": [{**c, "labels": labels, "colors": colors} for c in charts],
            "charts_hidden": max(0, len(keys) - MAX_CHARTS),
            "latency": {**histograms, "labels": labels, "colors": colors},
        },
    )
