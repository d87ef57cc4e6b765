"""Metrics benchmark: logging and reading metrics against MLflow's ``MlflowClient`` on SQLite,
the same data on both sides; writes ``bench/RESULTS_metrics.md``::

    python bench/bench_metrics.py [--rounds 3]
    python bench/bench_metrics.py --quick   # smoke run: prints the table (add --out to write it)
    python bench/bench_metrics.py --quick --no-mlflow   # ours and sqlite3 only

Every figure comes from a fresh subprocess on a fresh database (``_metrics_ours.py``,
``_metrics_mlflow.py``), run the way ``run.py`` runs its own (``_runner.Measurer``: after
waiting for the shared machine to go quiet, the CPU other processes took measured); the
two sides alternate which goes first in each round, and the table shows medians over the
rounds. The measurements and their goals are issue 12's (bench/README.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _harness import (
    Row,
    add_run_options,
    bench_parser,
    field_of,
    finish,
    fmt_ms,
    fmt_rate,
    fmt_x,
    machine,
    median,
    postgres_server,
    ratio,
    results_path,
    write_results,
    write_sections,
)
from _metrics_report import render
from _pg import drop_prefixed, new_prefix
from _runner import Measurer

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS_metrics.md"


@dataclass(frozen=True)
class Plan:
    rounds: int
    seq_calls: int
    conc_calls: int
    batch_calls: int
    mlflow_points: int
    mlflow_batches: int
    history_points: int
    experiments: int
    reads: int
    lag_s: float
    sqlite_batches: int
    quiet_wait_s: float


FULL = Plan(
    rounds=3,
    seq_calls=2000,
    conc_calls=20_000,
    batch_calls=5000,
    mlflow_points=300,
    mlflow_batches=10,
    history_points=10_000,
    experiments=2000,
    reads=5,
    lag_s=5.0,
    sqlite_batches=50,
    quiet_wait_s=5.0,
)
QUICK = Plan(
    rounds=1,
    seq_calls=200,
    conc_calls=1000,
    batch_calls=200,
    mlflow_points=50,
    mlflow_batches=2,
    history_points=2000,
    experiments=300,
    reads=2,
    lag_s=1.0,
    sqlite_batches=5,
    quiet_wait_s=0.0,
)


def children(
    plan: Plan, pg: dict[str, str] | None = None
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each measurement: (script, scenario, options). Keys starting ``ml_`` are MLflow's.

    ``pg`` (``postgres`` server URL and database ``prefix``): the PostgreSQL run, each
    subprocess on a fresh database there, the reference raw asyncpg instead of sqlite3
    and no loop-lag row (the loop's share is the same as on SQLite's).
    """
    planned: dict[str, tuple[str, str, dict[str, Any]]] = {
        "sequential": ("_metrics_ours.py", "sequential", {"calls": plan.seq_calls}),
        "ml_log_metric": ("_metrics_mlflow.py", "log_metric", {"n": plan.mlflow_points}),
        "concurrent": ("_metrics_ours.py", "concurrent", {"calls": plan.conc_calls}),
        "batch": ("_metrics_ours.py", "batch", {"calls": plan.batch_calls}),
        "ml_log_batch": ("_metrics_mlflow.py", "log_batch", {"batches": plan.mlflow_batches}),
        "history": ("_metrics_ours.py", "history", {"n": plan.history_points}),
        "ml_history": ("_metrics_mlflow.py", "history", {"n": plan.history_points}),
        "search": ("_metrics_ours.py", "search", {"n": plan.experiments}),
        "ml_search": ("_metrics_mlflow.py", "search", {"n": plan.experiments}),
        "lag": ("_metrics_ours.py", "lag", {"seconds": plan.lag_s}),
        "sqlite": ("_metrics_ours.py", "sqlite", {"batches": plan.sqlite_batches}),
    }
    if pg is None:
        return planned
    del planned["lag"], planned["sqlite"]
    planned["asyncpg"] = (
        "_metrics_ours.py",
        "asyncpg",
        {"batches": plan.sqlite_batches, "calls": plan.seq_calls},
    )
    planned["search_floor"] = ("_metrics_ours.py", "search_floor", {"n": plan.experiments})
    planned["history_floor"] = ("_metrics_ours.py", "history_floor", {"n": plan.history_points})
    return {
        key: (script, scenario, {**opts, **pg}) for key, (script, scenario, opts) in planned.items()
    }


def round_order(keys: list[str], round_: int) -> list[str]:
    """``keys`` in the order of round ``round_``: every MLflow measurement right after the
    one of ours listed before it, or, in odd rounds, right before it."""
    if round_ % 2 == 0:
        return keys
    order: list[str] = []
    for key in keys:
        if key.startswith("ml_") and order:
            order.insert(len(order) - 1, key)
        else:
            order.append(key)
    return order


def collect(
    plan: Plan, workdir: Path, with_mlflow: bool, pg: dict[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Run every child of every round; the raw result (or error) of each, per measurement."""
    common = {"blocks": 1 if plan.rounds == 1 else 3, "reps": plan.reads, "tmp": str(workdir)}
    planned = children(plan, pg)
    keys = [k for k in planned if with_mlflow or not k.startswith("ml_")]
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    measure = Measurer(workdir, plan.quiet_wait_s)
    for round_ in range(plan.rounds):
        for key in round_order(keys, round_):
            script, scenario, opts = planned[key]
            label = f"round {round_ + 1}: {script} {scenario}"
            child = measure(label, [script, scenario, json.dumps({**common, **opts})])
            raw[key].append(child.record())
    return raw


RATES = ("seq", "conc", "batch")
"""The figures of ``summarize`` that are points per second; the others are seconds."""


def med(raw: dict[str, list[dict[str, Any]]], key: str, *path: str) -> float | None:
    values = field_of(raw.get(key, []), *path)
    return median(values) if values else None


def summarize(raw: dict[str, list[dict[str, Any]]], plan: Plan) -> tuple[list[Row], dict[str, Any]]:
    s: dict[str, Any] = {
        name: med(raw, key, *path)
        for name, key, path in (
            ("seq", "sequential", ("rate",)),
            ("conc", "concurrent", ("rate",)),
            ("batch", "batch", ("rate",)),
            ("ml_metric", "ml_log_metric", ("rate",)),
            ("ml_batch", "ml_log_batch", ("rate",)),
            ("history", "history", ("seconds",)),
            ("ml_history", "ml_history", ("seconds",)),
            ("search", "search", ("seconds",)),
            ("ml_search", "ml_search", ("seconds",)),
            ("search_floor", "search_floor", ("seconds",)),
            ("sqlite", "sqlite" if "sqlite" in raw else "asyncpg", ("rate",)),
            ("copy", "asyncpg", ("copy_rate",)),
            ("seq_floor", "asyncpg", ("seq_rate",)),
            ("history_rows", "history_floor", ("rows", "seconds")),
            ("history_arrays", "history_floor", ("arrays", "seconds")),
            ("lag_p50", "lag", ("load", "p50_ms")),
            ("lag_p99", "lag", ("load", "p99_ms")),
            ("lag_rate", "lag", ("writes_per_s",)),
            ("idle_p99", "lag", ("idle", "p99_ms")),
            ("idle_max", "lag", ("idle", "max_ms")),
            ("matches", "search", ("matches",)),
            ("ml_matches", "ml_search", ("matches",)),
        )
    }
    lag_max = field_of(raw.get("lag", []), "load", "max_ms")
    s["lag_max"] = max(lag_max) if lag_max else None
    s["same_order"] = _same_order(raw)

    n_hist, n_exp = f"{plan.history_points:,}", f"{plan.experiments:,}"
    compared = [
        # (measurement, ours, MLflow's, MLflow's call, goal): rates are compared as
        # ours / theirs, durations as theirs / ours, so a ratio above 1 is ours better.
        ("1. `log_metric`, one point per call, awaited one after another", "seq", "ml_metric",
         "`log_metric`", 15),
        ("2. `log_metric` from 64 concurrent tasks", "conc", "ml_metric", "`log_metric`", 100),
        ("3. `log_metrics`, 10 keys per call, from 64 tasks (points/s)", "batch", "ml_batch",
         "`log_batch` of 1,000", 10),
        (f"4. `get_metric_history` of {n_hist} points", "history", "ml_history",
         "`get_metric_history`", 20),
        (f"5. filter `acc > 0.5`, order by `p95_ms`, {n_exp} experiments", "search",
         "ml_search", "`search_runs`", 40),
    ]  # fmt: skip
    rows = []
    for what, ours, theirs, call, goal in compared:
        is_rate = ours in RATES
        fmt = fmt_rate if is_rate else fmt_ms
        r = ratio(s[ours], s[theirs]) if is_rate else ratio(s[theirs], s[ours])
        target = f"≥ {goal:g}x"
        if ours == "batch":
            target += f" (stretch 20x: {'met' if r is not None and r >= 20 else 'not met'})"
        ok = None if r is None else r >= goal
        rows.append(Row(what, fmt(s[ours]), f"{fmt(s[theirs])} ({call})", fmt_x(r), target, ok))
    if "lag" not in raw:
        pass  # the PostgreSQL run: no lag row
    elif s["lag_p99"] is None:
        rows.append(Row("6. 1 ms sleeper while 64 tasks log", "n/a", "", "", "", None))
    else:
        rows.append(
            Row(
                f"6. 1 ms sleeper's oversleep, {plan.lag_s:g} s of 64 tasks `log_metric` flat out",
                f"p50 {s['lag_p50']:.2f} / p99 {s['lag_p99']:.2f} / max {s['lag_max']:.2f} ms",
                f"idle loop: p99 {s['idle_p99']:.2f} / max {s['idle_max']:.2f} ms",
                "—",
                "p99 ≤ 2 ms, max ≤ 5 ms",
                s["lag_p99"] <= 2 and s["lag_max"] <= 5,
            )
        )
    physical = "plain `sqlite3`" if "sqlite" in raw else "raw asyncpg `executemany`"
    rows.append(
        Row(
            f"7. physical reference: {physical}, 1,000-row batches",
            "—",
            fmt_rate(s["sqlite"]),
            _share(ratio(s["batch"], s["sqlite"])),
            "reference",
            None if s["sqlite"] is None else True,
        )
    )
    if "asyncpg" in raw:
        rows.append(
            Row(
                "7b. physical reference: raw asyncpg binary COPY, 1,000-row batches",
                "—",
                fmt_rate(s["copy"]),
                _share(ratio(s["batch"], s["copy"])),
                "reference",
                None if s["copy"] is None else True,
            )
        )
    if "search_floor" in raw:
        rows.append(
            _floor(
                "7c. reference for 5: raw asyncpg, the same two queries, "
                "`Experiment(*row)` undecoded",
                fmt_ms(s["search_floor"]),
                ratio(s["search_floor"], s["search"]),
                ratio(s["ml_search"], s["search_floor"]),
                5,
            )
        )
    if "asyncpg" in raw:
        rows.append(
            _floor(
                "7d. reference for 1: raw asyncpg, each point and its latest row in one "
                "autocommitted statement, awaited one after another",
                fmt_rate(s["seq_floor"]),
                ratio(s["seq"], s["seq_floor"]),
                ratio(s["seq_floor"], s["ml_metric"]),
                1,
            )
        )
    if "history_floor" in raw:
        fastest = min(
            (v for v in (s["history_rows"], s["history_arrays"]) if v is not None), default=None
        )
        rows.append(
            _floor(
                "7e. reference for 4: raw asyncpg, one `MetricPoint` per row as the driver "
                "decodes it / the tracker's array statement, zipped as the tracker does",
                f"{fmt_ms(s['history_rows'])} / {fmt_ms(s['history_arrays'])}",
                ratio(fastest, s["history"]),
                ratio(s["ml_history"], fastest),
                4,
            )
        )
    return rows, s


def _floor(what: str, figure: str, share: float | None, ceiling: float | None, row: int) -> Row:
    """A reference row: how much of it row ``row`` reaches, and MLflow's figure over it
    (the ratio row ``row`` would have if the tracker cost nothing above it)."""
    return Row(
        what,
        "—",
        figure,
        f"{_share(share, row)}; MLflow / this: {fmt_x(ceiling)}",
        "reference",
        None if share is None else True,
    )


def _same_order(raw: dict[str, list[dict[str, Any]]]) -> bool | None:
    """Whether both sides returned the same first 20 experiments, in the same order."""
    ours = [e["result"]["first"] for e in raw.get("search", []) if e["result"]]
    theirs = [e["result"]["first"] for e in raw.get("ml_search", []) if e["result"]]
    if not ours or not theirs:
        return None
    return all(first == theirs[0] for first in ours + theirs)


def _share(fraction: float | None, row: int = 3) -> str:
    return "n/a" if fraction is None else f"row {row} reaches {fraction:.0%} of it"


def main() -> int:
    parser = bench_parser(__doc__.splitlines()[0], RESULTS)
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="measure ours and sqlite3 only (no MLflow)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds each subprocess may wait for other processes to go quiet (default 5)",
    )
    add_run_options(parser)
    args = parser.parse_args()
    server = postgres_server(parser, args)
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if args.quiet_wait is not None:
        plan = replace(plan, quiet_wait_s=args.quiet_wait)
    with_mlflow = not args.no_mlflow

    parts: list[dict[str, str] | None] = [] if args.only == "postgres" else [None]
    if server is not None:
        parts.append({"postgres": server, "prefix": new_prefix()})
    texts: dict[bool, str] = {}
    failed: list[str] = []
    for pg in parts:
        extra = ["asyncpg", "psycopg2-binary"] if pg else []
        meta = machine([*(["mlflow-skinny"] if with_mlflow else []), "psutil", *extra])
        meta["quick"] = args.quick
        with tempfile.TemporaryDirectory(prefix="bench-metrics-", dir=args.tmp) as workdir:
            try:
                raw = collect(plan, Path(workdir), with_mlflow, pg)
            finally:
                if pg:
                    drop_prefixed(pg["postgres"], pg["prefix"])
        finish(meta)
        rows, s = summarize(raw, plan)
        texts[pg is not None] = render(rows, s, raw, plan, meta, with_mlflow)
        write_results(None, texts[pg is not None])
        failed += [k for k, entries in raw.items() for e in entries if e["error"]]
    write_sections(results_path(args.out, args.quick, RESULTS), texts.get(False), texts.get(True))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
