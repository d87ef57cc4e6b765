"""Instructions per call of the tracker's hot paths, under callgrind: noise-free A/B.

Wall-clock figures on a shared machine move by ±30%; instruction counts do not. Each mode
runs twice under ``valgrind --tool=callgrind`` (PYTHONHASHSEED=0), with N and 3N calls
after the same setup; the difference over 2N is the cost of one call, setup and imports
cancelled out (run to run it still moves by about 1%: ids and times differ).

    python bench/callgrind_lifecycle.py [--n 150] [--postgres URL] [MODE ...]

Modes: ``seq`` (start+end awaited one after another), ``conc`` (the same from 64 tasks),
``get`` (get_experiment), ``getm`` (get_experiment of runs with a metric and a param),
``filter`` (a tag filter matching 50 of 150), ``hist`` and ``values`` (get_metric_history
and get_metric_values of a key with 10,000 points; a few calls are enough: ``--n 5``).
With ``--postgres`` the URL's database is emptied (schema public dropped) before each
run; the server's work is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

from _data import spec

from healthchain.tracking import AsyncExperimentTracker

MODES = ("seq", "conc", "get", "getm", "filter", "hist", "values")
HISTORY = 10_000


async def _lifecycle(tracker: AsyncExperimentTracker, i: int) -> str:
    experiment_id = await tracker.start_experiment(**spec(i))
    await tracker.end_experiment(experiment_id)
    return experiment_id


async def workload(mode: str, n: int, target: str) -> None:
    """``n`` calls of ``mode`` on a fresh database, after its setup."""
    uri = target if "://" in target else f"sqlite:///{target}"
    async with AsyncExperimentTracker(uri, project_name="bench", heartbeat_interval=86400) as t:
        seed = 20 if mode in ("seq", "conc") else 150
        ids = [await _lifecycle(t, i) for i in range(seed)]
        if mode in ("hist", "values"):
            await asyncio.gather(
                *(t.log_metric(ids[0], "loss", 1 / (i + 1), step=i) for i in range(HISTORY))
            )
        if mode == "getm":
            for experiment_id in ids:
                await t.log_metric(experiment_id, "acc", 0.5)
                await t.log_params(experiment_id, {"lr": 0.1})
        if mode == "seq":
            for i in range(seed, seed + n):
                await _lifecycle(t, i)
        elif mode == "conc":
            counter = iter(range(seed, seed + n))

            async def worker() -> None:
                for i in counter:
                    await _lifecycle(t, i)

            async with asyncio.TaskGroup() as tg:
                for _ in range(64):
                    tg.create_task(worker())
        elif mode in ("get", "getm"):
            for k in range(n):
                assert len((await t.get_experiment(ids[k % len(ids)])).components) == 3
        elif mode in ("hist", "values"):
            read = t.get_metric_history if mode == "hist" else t.get_metric_values
            for _ in range(n):
                assert len(await read(ids[0], "loss")) == HISTORY
        else:
            for _ in range(n):
                rows = await t.list_experiments(filters={"tags": {"environment": "production"}})
                assert len(rows) == 50, len(rows)


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
    parser.add_argument("modes", nargs="*", default=["seq", "conc", "get", "filter"])
    parser.add_argument("--n", type=int, default=150)
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
            low = _instructions(mode, args.n, args.postgres, workdir)
            high = _instructions(mode, 3 * args.n, args.postgres, workdir)
            print(f"{mode:7s} {(high - low) / (2 * args.n):12,.0f} instructions per call")


if __name__ == "__main__":
    main()
