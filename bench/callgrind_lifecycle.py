"""Instructions per call of the tracker's hot paths, under callgrind: noise-free A/B.

Wall-clock figures on a shared machine move by ±30%; instruction counts do not. Each mode
runs twice under ``valgrind --tool=callgrind`` (PYTHONHASHSEED=0), with N and 3N calls
after the same setup; the difference over 2N is the cost of one call, setup and imports
cancelled out (run to run it still moves by about 1%: ids and times differ).

    python bench/callgrind_lifecycle.py [--n N] [--postgres URL] [MODE ...]

Modes: ``seq`` (start+end awaited one after another), ``conc`` (the same from 64 tasks),
``get`` (get_experiment), ``getm`` (get_experiment of runs with a metric and a param),
``filter`` (a tag filter matching 50 of 150), ``metric`` (log_metric awaited one after
another, no step), ``metricc`` (log_metric from 64 tasks), ``metrics`` (log_metrics of 10
keys from 64 tasks), ``history`` and ``values`` (get_metric_history and
get_metric_values of a 10,000-point key) and ``mfilter`` (bench_metrics.py's filter on
``acc`` ordered by ``p95_ms``, over 600 runs).
N is 150, or 10 for the slow reads (``history``, ``values``, ``mfilter``), unless ``--n`` is
given. With ``--postgres`` the URL's database is emptied (schema public dropped) before
each run; the server's work is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from _data import METRIC_KEYS, measured, point_value, spec
from _metrics_ours import SEARCH_FILTERS, SEARCH_ORDER, from_tasks

from healthchain.tracking import AsyncExperimentTracker

Workload = Callable[[AsyncExperimentTracker, int], Awaitable[None]]

HISTORY_POINTS = 10_000
SEARCH_RUNS = 600


async def _lifecycle(tracker: AsyncExperimentTracker, i: int) -> str:
    experiment_id = await tracker.start_experiment(**spec(i))
    await tracker.end_experiment(experiment_id)
    return experiment_id


async def _seeded(t: AsyncExperimentTracker, count: int) -> list[str]:
    return [await _lifecycle(t, i) for i in range(count)]


async def seq(t: AsyncExperimentTracker, n: int) -> None:
    await _seeded(t, 20)
    for i in range(20, 20 + n):
        await _lifecycle(t, i)


async def conc(t: AsyncExperimentTracker, n: int) -> None:
    await _seeded(t, 20)
    await from_tasks(n, lambda i: _lifecycle(t, 20 + i))


async def _gets(t: AsyncExperimentTracker, ids: list[str], n: int) -> None:
    for k in range(n):
        assert len((await t.get_experiment(ids[k % len(ids)])).components) == 3


async def get(t: AsyncExperimentTracker, n: int) -> None:
    await _gets(t, await _seeded(t, 150), n)


async def getm(t: AsyncExperimentTracker, n: int) -> None:
    ids = await _seeded(t, 150)
    for experiment_id in ids:
        await t.log_metric(experiment_id, "acc", 0.5)
        await t.log_params(experiment_id, {"lr": 0.1})
    await _gets(t, ids, n)


async def tag_filter(t: AsyncExperimentTracker, n: int) -> None:
    await _seeded(t, 150)
    for _ in range(n):
        rows = await t.list_experiments(filters={"tags": {"environment": "production"}})
        assert len(rows) == 50, len(rows)


async def _running(t: AsyncExperimentTracker) -> str:
    """An experiment to log to, after the seed lifecycles the write modes all have."""
    await _seeded(t, 20)
    return await t.start_experiment(**spec(20))


async def metric(t: AsyncExperimentTracker, n: int) -> None:
    experiment_id = await _running(t)
    for i in range(n):
        await t.log_metric(experiment_id, "loss", point_value(i))


async def metricc(t: AsyncExperimentTracker, n: int) -> None:
    experiment_id = await _running(t)
    await from_tasks(n, lambda i: t.log_metric(experiment_id, "loss", point_value(i)))


async def metrics(t: AsyncExperimentTracker, n: int) -> None:
    experiment_id = await _running(t)
    await from_tasks(
        n, lambda i: t.log_metrics(experiment_id, dict.fromkeys(METRIC_KEYS, point_value(i)))
    )


async def _long_history(t: AsyncExperimentTracker) -> str:
    experiment_id = await _running(t)
    await from_tasks(
        HISTORY_POINTS,
        lambda i: t.log_metric(experiment_id, "loss", point_value(i), step=i),
    )
    return experiment_id


async def history(t: AsyncExperimentTracker, n: int) -> None:
    experiment_id = await _long_history(t)
    for _ in range(n):
        points = await t.get_metric_history(experiment_id, "loss")
        assert len(points) == HISTORY_POINTS, len(points)


async def values(t: AsyncExperimentTracker, n: int) -> None:
    experiment_id = await _long_history(t)
    for _ in range(n):
        pairs = await t.get_metric_values(experiment_id, "loss")
        assert len(pairs) == HISTORY_POINTS, len(pairs)


async def mfilter(t: AsyncExperimentTracker, n: int) -> None:
    async def one(i: int) -> None:
        experiment_id = await t.start_experiment(**spec(i))
        await t.log_metrics(experiment_id, measured(i), step=0)
        await t.end_experiment(experiment_id)

    await from_tasks(SEARCH_RUNS, one)
    expected = sum(1 for i in range(SEARCH_RUNS) if measured(i)["acc"] > 0.5)
    for _ in range(n):
        found = await t.list_experiments(SEARCH_FILTERS, order_by=SEARCH_ORDER)
        assert len(found) == expected, (len(found), expected)


MODES: dict[str, Workload] = {
    "seq": seq,
    "conc": conc,
    "get": get,
    "getm": getm,
    "filter": tag_filter,
    "metric": metric,
    "metricc": metricc,
    "metrics": metrics,
    "history": history,
    "values": values,
    "mfilter": mfilter,
}
SLOW = {
    "history": 10,
    "values": 10,
    "mfilter": 10,
}  # N of the modes whose one call reads thousands of rows


async def workload(mode: str, n: int, target: str) -> None:
    """``n`` calls of ``mode`` on a fresh database, after its setup."""
    uri = target if "://" in target else f"sqlite:///{target}"
    async with AsyncExperimentTracker(uri, project_name="bench", heartbeat_interval=86400) as t:
        await MODES[mode](t, n)


def _instructions(mode: str, n: int, postgres: str | None, workdir: str) -> int:
    if postgres:
        subprocess.run(
            [
                "psql",
                "-q",
                "-d",
                postgres,
                "-c",
                "drop schema public cascade; create schema public",
            ],
            check=True,
            capture_output=True,
        )
    target = postgres or os.path.join(workdir, f"{mode}-{n}.db")
    out = os.path.join(workdir, f"{mode}-{n}.cg")
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            mode,
            str(n),
            target,
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    with open(out) as f:
        found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.MULTILINE)
    assert found, out
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="*", default=list(MODES))
    parser.add_argument("--n", type=int, help="calls in the shorter run (default: see above)")
    parser.add_argument("--postgres")
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args: Any = parser.parse_args()
    if args.run:
        mode, n, target = args.run
        asyncio.run(workload(mode, int(n), target))
        return
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    with tempfile.TemporaryDirectory() as workdir:
        for mode in args.modes:
            n = args.n or SLOW.get(mode, 150)
            low = _instructions(mode, n, args.postgres, workdir)
            high = _instructions(mode, 3 * n, args.postgres, workdir)
            print(f"{mode:7s} {(high - low) / (2 * n):12,.0f} instructions per call", flush=True)


if __name__ == "__main__":
    main()
