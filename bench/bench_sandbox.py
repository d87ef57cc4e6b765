"""Sandbox benchmark: throughput with tracking on vs off and with two scorers vs none, and
event-loop lag during a run.

For each configuration one sandbox run sends ``--num`` requests (default 2,000) to a no-op
handler, on one event loop with the uvicorn server, the httpx client and (when tracking is
on) the tracker's writer. A task on that loop sleeps 1 ms in a loop and records how much
longer each sleep took than asked: the event-loop lag. Every configuration is repeated
``--repeat`` times; the table shows medians, and each ratio (tracked / untracked, and the
tracked run with two ``@score`` methods, one ``def`` and one ``async def``, / the same run
without) is computed per round (the order of the runs alternates) and its median reported.
Writes ``bench/RESULTS_sandbox.md``::

    python bench/bench_sandbox.py [--num 2000] [--repeat 5]
    python bench/bench_sandbox.py --quick   # smoke run: prints the table (add --out to write it)
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from _harness import (
    clock,
    finish,
    machine,
    machine_section,
    median,
    percentile,
    results_path,
    write_results,
)

from healthchain.models import CDSRequest, CDSResponse
from healthchain.sandbox import SandboxResult, ServiceConfig, api, ehr, sandbox, score
from healthchain.use_cases import ClinicalDecisionSupport

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "sandbox"
RESULTS = HERE / "RESULTS_sandbox.md"

CONTEXT = {"userId": "Practitioner/1", "patientId": "Patient/1"}
EMPTY = CDSResponse(cards=[])


def new_request() -> CDSRequest:
    return CDSRequest.model_validate(
        {"hook": "patient-view", "hookInstance": os.urandom(16).hex(), "context": CONTEXT}
    )


async def async_noop(self: Any, request: CDSRequest) -> CDSResponse:
    return EMPTY


def sync_sleep_5ms(self: Any, request: CDSRequest) -> CDSResponse:
    time.sleep(0.005)
    return EMPTY


async def load(self: Any) -> CDSRequest:
    return new_request()


def card_count(self: Any, request: CDSRequest, response: CDSResponse) -> float:
    return len(response.cards)


async def hook_named(self: Any, request: CDSRequest, response: CDSResponse) -> dict[str, float]:
    return {"patient_view": float(request.hook == "patient-view")}


SCORERS = {"card_count": score(card_count), "hook_named": score(hook_named)}
"""Two scorers: one ``def`` (a worker thread), one ``async def`` (the loop)."""


CONCURRENCY: int | None = None
"""``service_config['max_concurrency']``; None keeps the sandbox's default."""


def define(
    handler: Callable[..., Any], num: int, storage_uri: str | None, scored: bool = False
) -> type[ClinicalDecisionSupport]:
    cls = type(
        "Bench",
        (ClinicalDecisionSupport,),
        {
            "svc": api(handler),
            "load": ehr(workflow="patient-view", num=num)(load),
            **(SCORERS if scored else {}),
        },
    )
    config = None if storage_uri is None else {"storage_uri": storage_uri, "project_name": "bench"}
    service: dict[str, Any] = {"port": 0}
    if CONCURRENCY is not None:
        service["max_concurrency"] = CONCURRENCY
    return sandbox(experiment_config=config, service_config=service)(cls)


@dataclass
class Measurement:
    rps: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    ticks: int
    gc_max_ms: float = 0.0
    loop_cpu_us: float = 0.0
    """CPU time of the loop's thread per request, over the whole run: unlike req/s,
    barely moved by other processes on a shared machine."""


class GcPauses:
    """Records how long each garbage collection took, to explain the longest ticks."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = clock()
        if phase == "start":
            self._start = now
        else:
            self.pauses.append((self._start, now - self._start))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def measure(use_case: ClinicalDecisionSupport, scored: bool) -> Measurement:
    lags: list[tuple[float, float]] = []
    done = anyio.Event()

    async def sleeper() -> None:
        while not done.is_set():
            start = clock()
            await anyio.sleep(0.001)
            lags.append((start, clock() - start - 0.001))

    result: SandboxResult | None = None
    with GcPauses() as collections:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            cpu = time.thread_time()
            try:
                result = await use_case.astart_sandbox(save_data=False)
            finally:
                cpu = time.thread_time() - cpu
                done.set()
    assert result is not None
    result.raise_for_status()
    if scored:
        assert all(o.scores is not None for o in result.outcomes), "a response went unscored"
    # Throughput and lag over the request phase: first request sent to last answer read.
    first = min(o.start_time for o in result.outcomes).timestamp()
    last = max(o.start_time.timestamp() + o.latency_ms / 1000 for o in result.outcomes)
    offset = time.time() - clock()  # map perf_counter to wall time
    window = [lag * 1000 for start, lag in lags if first <= start + offset <= last]
    if os.environ.get("BENCH_DEBUG"):
        slow = [
            (round((start + offset - first) / (last - first), 3), round(lag * 1000, 2))
            for start, lag in lags
            if first <= start + offset <= last and lag > 0.003
        ]
        print("slow ticks (position in run, ms):", slow, file=sys.stderr)
    window.sort()
    pauses = [p * 1000 for start, p in collections.pauses if first <= start + offset <= last]
    return Measurement(
        rps=len(result.outcomes) / (last - first),
        lag_p50_ms=median(window),
        lag_p99_ms=percentile(window, 0.99),
        lag_max_ms=window[-1],
        ticks=len(window),
        gc_max_ms=max(pauses, default=0.0),
        loop_cpu_us=cpu / len(result.outcomes) * 1e6,
    )


async def idle_lag(seconds: float) -> Measurement:
    samples: list[float] = []
    end = clock() + seconds
    while clock() < end:
        start = clock()
        await anyio.sleep(0.001)
        samples.append((clock() - start - 0.001) * 1000)
    samples.sort()
    return Measurement(
        0.0,
        median(samples),
        percentile(samples, 0.99),
        samples[-1],
        len(samples),
    )


def run_once(
    handler: Callable[..., Any], num: int, tracked: bool, db: Path, scored: bool = False
) -> Measurement:
    storage_uri = f"sqlite:///{db}" if tracked else None
    cls = define(handler, num, storage_uri, scored)
    # Build the use case (and its sync tracker) outside the measured loop, and move what
    # is alive by now (modules, app, tracker) out of the collector's sight, as long-running
    # services do: a full collection of it would otherwise pause the loop ~50 ms.
    with cls() as use_case:
        gc.collect()
        gc.freeze()
        try:
            return anyio.run(measure, use_case, scored)
        finally:
            gc.unfreeze()


def median_of(values: list[Measurement], field: str) -> float:
    return median(getattr(m, field) for m in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke variant")
    parser.add_argument("--num", type=int, default=None, help="requests per run (default 2000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 5)")
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write (default bench/RESULTS_sandbox.md; --quick: nowhere)",
    )
    args = parser.parse_args()
    args.num = args.num or (200 if args.quick else 2000)
    args.repeat = args.repeat or (1 if args.quick else 5)
    meta = machine(["uvicorn", "httpx", "starlette"])
    global CONCURRENCY
    CONCURRENCY = args.concurrency

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    db = WORK / "sandbox.db"

    # Warm-up: imports, first connections, pydantic schemas.
    run_once(async_noop, 200, True, db)
    run_once(async_noop, 200, False, db)
    run_once(async_noop, 200, True, db, scored=True)

    runs: dict[str, list[Measurement]] = {
        "off": [],
        "on": [],
        "scored": [],
        "sync": [],
        "idle": [],
    }
    ratios: list[float] = []
    score_ratios: list[float] = []
    per_round: list[str] = []
    for round_ in range(args.repeat):
        load = os.getloadavg()[0]
        idle = anyio.run(idle_lag, 0.5)
        # Alternate the order of the three, so none gains from running later.
        measured: dict[str, Measurement] = {}
        order = [("off", False, False), ("on", True, False), ("scored", True, True)]
        for key, tracked, scored in reversed(order) if round_ % 2 else order:
            measured[key] = run_once(async_noop, args.num, tracked, db, scored)
        off, on, scored_run = measured["off"], measured["on"], measured["scored"]
        sync = run_once(sync_sleep_5ms, args.num, True, db)
        for key, value in (
            ("off", off),
            ("on", on),
            ("scored", scored_run),
            ("sync", sync),
            ("idle", idle),
        ):
            runs[key].append(value)
        ratios.append(on.rps / off.rps)
        score_ratios.append(scored_run.rps / on.rps)
        row = (
            f"| {round_ + 1} | {load:.2f} | {idle.lag_p99_ms:.2f} / {idle.lag_max_ms:.2f} | "
            f"{off.rps:.0f} | {on.rps:.0f} | {on.rps / off.rps:.3f} | "
            f"{on.lag_p99_ms:.2f} / {on.lag_max_ms:.2f} | "
            f"{scored_run.rps:.0f} | {scored_run.rps / on.rps:.3f} | "
            f"{scored_run.lag_p99_ms:.2f} / {scored_run.lag_max_ms:.2f} | "
            f"{sync.rps:.0f} | {sync.lag_p99_ms:.2f} / {sync.lag_max_ms:.2f} |"
        )
        per_round.append(row)
        print(row, flush=True)

    rows = [
        ("async no-op, tracking off", runs["off"]),
        ("async no-op, tracking on", runs["on"]),
        ("async no-op, tracking on, two scorers (def + async def)", runs["scored"]),
        ("sync handler sleeping 5 ms, tracking on", runs["sync"]),
    ]
    concurrency = ServiceConfig().max_concurrency if CONCURRENCY is None else CONCURRENCY
    lines = [
        "# Sandbox benchmark",
        "",
        f"`python bench/bench_sandbox.py --num {args.num} --repeat {args.repeat}`: "
        f"{args.num} requests per run, {args.repeat} rounds, each round running the four "
        "configurations in turn (tracking off, on, and on with two scorers reverse their "
        "order every other round). One "
        "event loop carries the uvicorn server, the httpx "
        f"client ({concurrency} request(s) in flight, the default) and the tracker; SQLite "
        "file storage; objects alive before each run are frozen out of the garbage "
        "collector (`gc.freeze`), as long-running services do. Lag is the oversleep of a "
        "task sleeping 1 ms on that loop, over the request phase of each run.",
        "",
        "Medians over the rounds:",
        "",
        "| run | req/s | lag p50 (ms) | lag p99 (ms) | lag max (ms) | lag samples |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, values in [*rows, ("idle loop, no run (0.5 s)", runs["idle"])]:
        rps = f"{median_of(values, 'rps'):.0f}" if values[0].rps else "-"
        lines.append(
            f"| {label} | {rps} | {median_of(values, 'lag_p50_ms'):.2f} | "
            f"{median_of(values, 'lag_p99_ms'):.2f} | {median_of(values, 'lag_max_ms'):.2f} | "
            f"{median_of(values, 'ticks'):.0f} |"
        )
    tracked_runs = runs["on"] + runs["scored"] + runs["sync"]
    lines += [
        "",
        f"Throughput with tracking on / off: median **{median(ratios):.3f}** "
        f"(per round {', '.join(f'{r:.3f}' for r in ratios)}; target at least 0.9).",
        "",
        f"Throughput with two scorers / without (both tracked): median "
        f"**{median(score_ratios):.3f}** "
        f"(per round {', '.join(f'{r:.3f}' for r in score_ratios)}; target at least 0.9). "
        f"CPU time of the loop's thread per request, which other processes on the machine "
        f"barely move: {median_of(runs['on'], 'loop_cpu_us'):.0f} µs without scorers, "
        f"{median_of(runs['scored'], 'loop_cpu_us'):.0f} µs with them (medians).",
        "",
        f"Tracked runs meeting both lag targets (p99 at most 2 ms, no tick over 5 ms): "
        f"{sum(m.lag_p99_ms <= 2 and m.lag_max_ms <= 5 for m in tracked_runs)} "
        f"of {len(tracked_runs)}.",
        "",
        "Per round (load = 1-minute load average before the round; the machine may be "
        "shared, and an idle loop's own lag shows how noisy it was):",
        "",
        "| round | load | idle p99 / max (ms) | off req/s | on req/s | on/off | "
        "on lag p99 / max (ms) | scored req/s | scored/on | scored lag p99 / max (ms) | "
        "sync 5 ms req/s | sync lag p99 / max (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *per_round,
        "",
        *machine_section(finish(meta)),
    ]
    write_results(results_path(args.out, args.quick, RESULTS), "\n".join(lines))


if __name__ == "__main__":
    main()
