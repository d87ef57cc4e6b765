"""Helpers for the benchmark subprocesses (stdlib only, so they add nothing to RSS)."""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["emit", "maxrss_mb", "median", "parse_args", "timed"]


def parse_args() -> tuple[str, str, dict[str, Any]]:
    """``argv``: scenario, result file, JSON options."""
    scenario, out = sys.argv[1], sys.argv[2]
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    return scenario, out, opts


def emit(out: str, result: dict[str, Any]) -> None:
    result.setdefault("maxrss_mb", maxrss_mb())
    with open(out, "w") as f:
        json.dump(result, f)


def maxrss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value
