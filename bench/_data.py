"""The data both sides write: one deterministic spec per experiment index (stdlib only).

Tags: ``environment`` cycles production/staging/dev (a third match ``production``),
``model`` (7 values), ``owner`` (13 values) and ``team`` (100 values: 1 % match one).
Every experiment has a 3-component pipeline and a small pipeline config.

Metrics (``bench_metrics.py``): experiment ``i`` measured ``acc`` (just under half above
0.5) and ``p95_ms`` (all different, so both sides order the same way); batches log the
10 keys of :data:`METRIC_KEYS` at each step; a point's value is :func:`point_value`.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "COMPONENTS",
    "ENVIRONMENTS",
    "METRIC_KEYS",
    "PROJECT",
    "TEAM_QUERIES",
    "list_metrics",
    "measured",
    "mlflow_tags",
    "point_value",
    "spec",
    "team",
]

PROJECT = "bench"
ENVIRONMENTS = ("production", "staging", "dev")
COMPONENTS: tuple[dict[str, str], ...] = (
    {"name": "preprocess", "type": "transform", "stage": "pre"},
    {"name": "summarizer", "type": "model", "stage": "inference"},
    {"name": "postprocess", "type": "transform", "stage": "post"},
)
# Team values queried in the 1 % case, the same list for every method compared.
TEAM_QUERIES = tuple(f"team-{n:03d}" for n in (7, 42, 77, 13, 99, 0, 58, 21, 64))


def team(i: int) -> str:
    return f"team-{i % 100:03d}"


def spec(i: int) -> dict[str, Any]:
    """Keyword arguments of ``start_experiment`` for experiment ``i``."""
    return {
        "name": f"exp-{i}",
        "tags": {
            "environment": ENVIRONMENTS[i % 3],
            "model": f"model-{i % 7}",
            "owner": f"owner-{i % 13}",
            "team": team(i),
        },
        "pipeline_config": {"batch_size": 32, "temperature": 0.2},
        "components": COMPONENTS,
    }


_COMPONENT_TAGS = {f"component.{n}": json.dumps(c) for n, c in enumerate(COMPONENTS)}


def mlflow_tags(i: int) -> dict[str, str]:
    """MLflow tags for run ``i``: the same 4 tags plus the 3 components as 3 tags."""
    return {**spec(i)["tags"], **_COMPONENT_TAGS}


METRIC_KEYS = tuple(f"metric_{k}" for k in range(10))


def point_value(step: int) -> float:
    """The value logged at ``step``: a float that is not a round number."""
    return step * 0.001 + 0.5


def measured(i: int) -> dict[str, float]:
    """The metrics experiment ``i`` ends with: ``acc`` (in [0, 1), 1,000 of every 2,000
    above 0.5 minus the boundary) and ``p95_ms`` (distinct for i < 10,007: no ties)."""
    return {"acc": (i * 7919 % 2000) / 2000, "p95_ms": 20 + (i * 104729 % 10007) / 10}


def list_metrics(i: int) -> dict[str, float]:
    """Five metrics of experiment ``i`` for the dashboard's list (``bench_ui.py``): those it
    :func:`measured`, a sandbox run's ``requests``, and ``f1`` and ``loss``."""
    acc = measured(i)["acc"]
    return {
        **measured(i),
        "f1": (i * 104_729 % 10_000) / 10_000,
        "loss": 1 - acc,
        "requests": float(100 + i % 400),
    }
