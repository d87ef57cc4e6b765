"""A child process measuring memory: ``python memory_child.py URI``.

Lists experiments with many distinct filter shapes (how many tags, statuses, which other
filters), as a dashboard left open for days would. Prints, after a warm-up of 200 shapes
and after 300 more distinct ones, the live Python memory (tracemalloc) and the resident
set size (for the record), in bytes: ``live_before live_after rss_before rss_after``.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import sys
import tracemalloc
from typing import Any

from healthchain.tracking import ExperimentTracker


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def shapes() -> list[tuple[int, int, bool, bool, bool, bool]]:
    all_shapes = list(
        itertools.product(range(33), range(5), *[(False, True)] * 4)  # type: ignore[arg-type]
    )
    random.Random(10).shuffle(all_shapes)
    return all_shapes


def query(tracker: ExperimentTracker, shape: tuple[int, int, bool, bool, bool, bool]) -> None:
    tags, statuses, name, project, limit, offset = shape
    filters: dict[str, Any] = {"tags": {f"k{i}": i for i in range(tags)}}
    filters["status"] = ["RUNNING", "COMPLETED", "FAILED", "INTERRUPTED"][:statuses]
    if name:
        filters["name"] = "n"
    if project:
        filters["project"] = "p"
    tracker.list_experiments(filters, limit=10 if limit else None, offset=1 if offset else 0)


def live() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    every = shapes()
    tracemalloc.start(1)
    with ExperimentTracker(sys.argv[1]) as tracker:
        tracker.end_experiment(tracker.start_experiment("n", tags={"k0": 0}))
        for shape in every[:200]:
            query(tracker, shape)
        live_before, rss_before = live(), rss()
        for shape in every[200:500]:
            query(tracker, shape)
        live_after, rss_after = live(), rss()
    print(live_before, live_after, rss_before, rss_after, flush=True)


if __name__ == "__main__":
    main()
