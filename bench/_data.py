"""The data both sides write: one deterministic spec per experiment index (stdlib only).

Metrics (for the dashboard's list ordered by one): five per experiment, from ``metrics``.

Tags: ``environment`` cycles production/staging/dev (a third match ``production``),
``model`` (7 values), ``owner`` (13 values) and ``team`` (100 values: 1 % match one).
Every experiment has a 3-component pipeline and a small pipeline config.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "COMPONENTS",
    "METRIC_KEYS",
    "ENVIRONMENTS",
    "PROJECT",
    "TEAM_QUERIES",
    "metrics",
    "mlflow_tags",
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


METRIC_KEYS = ("acc", "f1", "loss", "latency_p95_ms", "requests")


def metrics(i: int) -> dict[str, float]:
    """Five metrics of experiment ``i``, spread evenly (``acc`` > 0.5 for half of them)
    in an order unrelated to ``i``, so ordering by one is real work."""
    acc = (i * 7919 % 10_000) / 10_000
    return {
        "acc": acc,
        "f1": (i * 104_729 % 10_000) / 10_000,
        "loss": 1 - acc,
        "latency_p95_ms": 20 + (i * 31 % 997) / 10,
        "requests": float(100 + i % 400),
    }
