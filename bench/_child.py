"""How a benchmark subprocess takes its orders and hands back its result (stdlib only, so
it adds nothing to RSS); timing and medians are ``_harness``'s, as for every script."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

__all__ = ["emit", "maxrss_mb", "parse_args"]


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
