"""Compare-page benchmark: server time of ``/compare`` over 10 runs whose metric histories
hold 10,000 points each. Writes ``bench/RESULTS_compare.md``::

    python bench/bench_compare.py [--runs 10] [--points 10000] [--keys 1] [--repeat 30]
    python bench/bench_compare.py --quick   # smoke run: prints the table (add --out to write it)

The page as the dashboard serves it (ids resolved, runs, requests and every history read,
each history downsampled on the server, the template rendered with the chart JSON),
requested in-process through ``httpx.ASGITransport`` from a freshly started app on a
SQLite file. *Server time* is the app's ASGI call, from receiving the request to sending
the last body byte; the tracker's reads alone (every ``get_metric_values`` of the page)
are shown beside it. Each run also has params, tags and 100 request records. Medians of
repeated rounds after two warm-up rounds. Goal: under 150 ms of server time.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _harness import clock, finish, machine, machine_section, median, results_path, write_results

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "compare"
RESULTS = HERE / "RESULTS_compare.md"
GOAL_MS = 150.0
KEYS = ("acc", "train_loss", "latency_p95_ms", "f1", "rouge_l")


async def populate(storage_uri: str, runs: int, points: int, keys: int) -> list[str]:
    """``runs`` finished runs, each with ``keys`` metrics of ``points`` steps."""
    from healthchain.tracking import AsyncExperimentTracker, RequestRecord

    ids = []
    now = datetime.now(UTC)
    async with AsyncExperimentTracker(storage_uri, project_name="bench") as tracker:
        for r in range(runs):
            run = await tracker.start_experiment(
                f"run-{r:02d}",
                tags={"model": f"model-{r % 3}", "environment": "staging"},
                pipeline_config={"template": "cards.json", "temperature": r / 10},
            )
            await tracker.log_params(run, {"lr": 10.0 ** -(r % 4), "batch": 32, "seed": r})
            for step in range(0, points, 500):
                # Queued together, the writer commits each 500 x keys points in few batches.
                await asyncio.gather(
                    *(
                        tracker.log_metrics(
                            run,
                            {k: math.sin(s / 200 + i) + r / 10 for i, k in enumerate(KEYS[:keys])},
                            step=s,
                        )
                        for s in range(step, min(points, step + 500))
                    )
                )
            records = [RequestRecord(i, now, 20.0 + (i * 37 % 50), 200) for i in range(100)]
            await tracker.log_requests(run, records)
            await tracker.end_experiment(run)
            ids.append(run)
    return ids


async def measure(storage_uri: str, ids: list[str], repeat: int) -> dict[str, list[float]]:
    from _served import served_dashboard

    times: dict[str, list[float]] = {"server": [], "round_trip": [], "reads": [], "cpu": []}
    query = "&".join(f"id={i}" for i in ids)
    async with served_dashboard(storage_uri) as (client, tracker, server_times):
        keys = sorted((await tracker.get_experiment(ids[0])).metrics)
        for round_ in range(repeat + 2):
            t0, cpu0 = clock(), time.process_time()
            response = await client.get(f"/compare?{query}")
            round_trip, cpu = clock() - t0, time.process_time() - cpu0
            assert response.status_code == 200, response.text[:500]
            assert response.text.count('data-chart="metric"') == len(keys)
            t0 = clock()
            for i in ids:
                for key in keys:
                    await tracker.get_metric_values(i, key)
            reads = clock() - t0
            if round_ >= 2:  # two warm-up rounds
                times["server"].append(server_times[-1])
                times["round_trip"].append(round_trip)
                times["reads"].append(reads)
                times["cpu"].append(cpu)
        size = len(response.content)
    times["page_kib"] = [size / 1024]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke variant")
    parser.add_argument("--runs", type=int, default=10, help="runs compared (2 to 10)")
    parser.add_argument("--points", type=int, default=None, help="steps per history")
    parser.add_argument("--keys", type=int, default=1, help=f"metrics per run (1 to {len(KEYS)})")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 30)")
    parser.add_argument(
        "--out", type=Path, help="where to write (default RESULTS_compare.md; --quick: nowhere)"
    )
    args = parser.parse_args()
    args.points = args.points or (1_000 if args.quick else 10_000)
    args.repeat = args.repeat or (3 if args.quick else 30)
    WORK.mkdir(parents=True, exist_ok=True)
    meta = machine(["httpx", "starlette", "jinja2"])
    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-", dir=WORK))
    try:
        storage_uri = f"sqlite:///{workdir / 'ours.db'}"
        t0 = clock()
        ids = asyncio.run(populate(storage_uri, args.runs, args.points, args.keys))
        print(f"{args.runs} runs x {args.keys} x {args.points:,} points in {clock() - t0:.1f} s")
        times = asyncio.run(measure(storage_uri, ids, args.repeat))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_results(results_path(args.out, args.quick, RESULTS), render(args, times, finish(meta)))


def render(args: argparse.Namespace, times: dict[str, list[float]], meta: dict[str, Any]) -> str:
    server = median(times["server"]) * 1000
    verdict = "PASS" if server < GOAL_MS else "MISS"
    return "\n".join(
        [
            "# Compare-page benchmark",
            "",
            f"`python bench/bench_compare.py --runs {args.runs} --points {args.points} "
            f"--keys {args.keys} --repeat {args.repeat}`: `/compare` of {args.runs} runs, "
            f"each with {args.keys} metric histories of {args.points:,} points (so "
            f"{args.runs * args.keys} histories, {args.runs * args.keys * args.points:,} "
            "points read per page), params, tags and 100 requests, on a SQLite file. "
            "*Server* is the app's ASGI call for the whole page (ids resolved, every "
            "history read and downsampled, template rendered); *round trip* adds httpx's "
            "in-process client; *CPU* is the CPU time this process (all its threads) spent "
            "on the round trip, what the page costs when no other process competes for the "
            "cores; *reads* is the tracker's `get_metric_values` calls alone. "
            f"Medians of {args.repeat} rounds after 2 warm-up rounds, in ms.",
            "",
            "| runs | points per history | histories | server | round trip | CPU | reads "
            "| page size | goal | |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| {args.runs} | {args.points:,} | {args.runs * args.keys} | {server:.1f} "
            f"| {median(times['round_trip']) * 1000:.1f} | {median(times['cpu']) * 1000:.1f} "
            f"| {median(times['reads']) * 1000:.1f} "
            f"| {times['page_kib'][0]:.0f} KiB | < {GOAL_MS:.0f} | {verdict} |",
            "",
            *machine_section(meta),
        ]
    )


if __name__ == "__main__":
    main()
