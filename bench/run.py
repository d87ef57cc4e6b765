"""Benchmark healthchain's tracker against MLflow's SQLite tracking store; write bench/RESULTS.md.

Every measurement runs in a fresh subprocess (``_ours.py``, ``_mlflow.py``, ``_cold_*.py``)
so that imports, peak RSS and cold start of one side never distort the other; the two
sides alternate within each repeat, and the table shows medians over the repeats.

    python bench/run.py            # full run (~5-8 minutes on 2 cores), writes bench/RESULTS.md
    python bench/run.py --quick    # small smoke run, prints the table (add --out to write it)
    python bench/run.py --postgres postgresql://user@host:5432/postgres [--only postgres]

With a PostgreSQL server (``--postgres`` or ``HEALTHCHAIN_BENCH_POSTGRES_URL``) it also
runs issue 15's PostgreSQL table (``_pg_run.py``) and writes it as a second section of
RESULTS.md; ``--only`` runs one of the two parts and keeps the file's other section.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    Row,
    add_run_options,
    bench_parser,
    field_of,
    finish,
    fmt_ms,
    fmt_num,
    fmt_rate,
    fmt_x,
    machine,
    machine_section,
    med,
    postgres_server,
    ratio,
    raw_section,
    results_path,
    spread,
    write_sections,
)
from _runner import NOISY_CPUS, Measurer, cold_start, wait_for_quiet

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Plan:
    repeats: int
    cold_pairs: int
    seq_n: int
    blocks: int
    concurrent_n: int
    lag_s: float
    n_10k: int
    n_100k: int
    query_reps: int
    gets: int
    mlflow_gets: int
    quiet_wait_s: float = 10.0
    """Before each subprocess, wait up to this long for other processes to go quiet."""
    retry_budget_s: float = 150.0
    """A subprocess that ran beside busy other processes is repeated, until the repeats
    have taken this long in all."""


FULL = Plan(
    repeats=3,
    cold_pairs=5,
    seq_n=250,
    blocks=3,
    concurrent_n=4000,
    lag_s=5.0,
    n_10k=10_000,
    n_100k=100_000,
    query_reps=5,
    gets=2000,
    mlflow_gets=300,
)
QUICK = Plan(
    repeats=1,
    cold_pairs=1,
    seq_n=60,
    blocks=1,
    concurrent_n=640,
    lag_s=1.0,
    n_10k=2_000,
    n_100k=10_000,
    query_reps=2,
    gets=200,
    mlflow_gets=50,
    quiet_wait_s=0.0,
    retry_budget_s=0.0,
)


def collect(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Run every subprocess of the plan; return the raw per-repeat results."""
    raw: dict[str, list[Any]] = {
        k: [] for k in ("ours_micro", "mlflow_lifecycle", "ours_10k", "mlflow_10k", "ours_100k")
    }
    raw["cold_ours"], raw["cold_mlflow"] = [], []
    tmp = str(workdir)

    measure = Measurer(workdir, plan.quiet_wait_s, plan.retry_budget_s)

    def step(label: str, key: str, args: list[str]) -> None:
        child = measure(label, args)
        raw[key].append({**child.record(), "psutil_peak_rss_mb": child.peak_rss_mb})

    # Cold starts first, one of each discarded so both sides start with warm caches.
    print("cold start", flush=True)
    cold_start("_cold_ours.py", workdir)
    cold_start("_cold_mlflow.py", workdir)
    for _ in range(plan.cold_pairs):
        if plan.quiet_wait_s:
            wait_for_quiet(plan.quiet_wait_s)
        raw["cold_ours"].append(cold_start("_cold_ours.py", workdir))
        raw["cold_mlflow"].append(cold_start("_cold_mlflow.py", workdir))

    micro = {
        "n": plan.seq_n,
        "blocks": plan.blocks,
        "concurrent_n": plan.concurrent_n,
        "lag_s": plan.lag_s,
        "tmp": tmp,
    }
    lifecycle = {"n": plan.seq_n, "blocks": plan.blocks, "tmp": tmp}
    d10 = {"n": plan.n_10k, "reps": plan.query_reps, "gets": plan.gets, "tmp": tmp}
    m10 = {"n": plan.n_10k, "reps": plan.query_reps, "gets": plan.mlflow_gets, "tmp": tmp}
    d100 = {"n": plan.n_100k, "reps": plan.query_reps, "gets": plan.gets, "team": True, "tmp": tmp}
    for rep in range(plan.repeats):
        print(f"repeat {rep + 1}/{plan.repeats}", flush=True)
        step(
            "ours: lifecycles, 64 tasks, loop lag",
            "ours_micro",
            ["_ours.py", "micro", json.dumps(micro)],
        )
        step(
            "mlflow: lifecycles",
            "mlflow_lifecycle",
            ["_mlflow.py", "lifecycle", json.dumps(lifecycle)],
        )
        step(f"ours: {plan.n_10k:,} experiments", "ours_10k", ["_ours.py", "data", json.dumps(d10)])
        step(f"mlflow: {plan.n_10k:,} runs", "mlflow_10k", ["_mlflow.py", "data", json.dumps(m10)])
        step(
            f"ours: {plan.n_100k:,} experiments + sqlite3 scan",
            "ours_100k",
            ["_ours.py", "data", json.dumps(d100)],
        )
    return raw


def summarize(raw: dict[str, Any], plan: Plan) -> tuple[list[Row], dict[str, Any]]:
    s: dict[str, Any] = {}
    s["seq"] = med(field_of(raw["ours_micro"], "seq_rate"))
    s["conc"] = med(field_of(raw["ours_micro"], "conc_rate"))
    s["ml_seq"] = med(field_of(raw["mlflow_lifecycle"], "store_rate"))
    s["ml_client"] = med(field_of(raw["mlflow_lifecycle"], "client_rate"))
    s["ml_delete"] = med(field_of(raw["mlflow_lifecycle"], "store_delete_journal_rate"))
    s["list"] = med(field_of(raw["ours_10k"], "list_s"))
    s["ml_search"] = med(field_of(raw["mlflow_10k"], "search_s"))
    s["team"] = med(field_of(raw["ours_100k"], "team_s"))
    s["scan"] = med(field_of(raw["ours_100k"], "scan_s"))
    s["get"] = med(field_of(raw["ours_10k"], "get_us"))
    s["ml_get"] = med(field_of(raw["mlflow_10k"], "get_run_us"))
    s["cold"] = med(field_of(raw["cold_ours"], "spawn_to_commit_s"))
    s["ml_cold"] = med(field_of(raw["cold_mlflow"], "spawn_to_commit_s"))
    s["cold_inproc"] = med(field_of(raw["cold_ours"], "in_process_s"))
    s["ml_cold_inproc"] = med(field_of(raw["cold_mlflow"], "in_process_s"))
    s["lag_p50"] = med(field_of(raw["ours_micro"], "lag", "load", "p50_ms"))
    s["lag_p99"] = med(field_of(raw["ours_micro"], "lag", "load", "p99_ms"))
    lag_max = field_of(raw["ours_micro"], "lag", "load", "max_ms")
    s["lag_max_med"] = med(lag_max)
    s["lag_max_worst"] = max(lag_max) if lag_max else None
    s["idle_p99"] = med(field_of(raw["ours_micro"], "lag", "idle", "p99_ms"))
    s["idle_max"] = med(field_of(raw["ours_micro"], "lag", "idle", "max_ms"))
    s["lag_writes"] = med(field_of(raw["ours_micro"], "lag", "writes_per_s"))
    s["rss"] = med(field_of(raw["ours_10k"], "maxrss_mb"))
    s["rss_psutil"] = med([e["psutil_peak_rss_mb"] for e in raw["ours_10k"] if not e["error"]])
    s["ml_rss"] = med(field_of(raw["mlflow_10k"], "maxrss_mb"))
    s["pop_10k"] = med(field_of(raw["ours_10k"], "populate_s"))
    s["pop_100k"] = med(field_of(raw["ours_100k"], "populate_s"))
    s["ml_pop_10k"] = med(field_of(raw["mlflow_10k"], "populate_s"))
    ours_keys, ml_keys = (
        ("ours_micro", "ours_10k", "ours_100k", "cold_ours"),
        ("mlflow_lifecycle", "mlflow_10k", "cold_mlflow"),
    )
    s["foreign_ours"] = [v for k in ours_keys for v in field_of(raw[k], "foreign_cpus")]
    s["foreign_ml"] = [v for k in ml_keys for v in field_of(raw[k], "foreign_cpus")]

    def x_row(
        target: str, ours: str, peer: str, r: float | None, goal: float, note: str = ""
    ) -> Row:
        return Row(
            target, ours, peer, fmt_x(r), f"≥ {goal:g}x", None if r is None else r >= goal, note
        )

    n10, n100 = f"{plan.n_10k:,}", f"{plan.n_100k:,}"
    rows = [
        x_row(
            "1. start+end lifecycle, awaited one after another",
            fmt_rate(s["seq"]),
            fmt_rate(s["ml_seq"]) + " (store)",
            ratio(s["seq"], s["ml_seq"]),
            10,
        ),
        x_row(
            "2. same lifecycle from 64 concurrent tasks",
            fmt_rate(s["conc"]),
            fmt_rate(s["ml_seq"]) + " (sequential store)",
            ratio(s["conc"], s["ml_seq"]),
            80,
        ),
        x_row(
            f"3. tags environment=production at {n10} (a third match)",
            fmt_ms(s["list"]),
            fmt_ms(s["ml_search"]) + " (search_runs)",
            ratio(s["ml_search"], s["list"]),
            40,
        ),
        x_row(
            f"4. 1 % `team` tag filter at {n100}",
            fmt_ms(s["team"]),
            fmt_ms(s["scan"]) + " (sqlite3 json_extract scan)",
            ratio(s["scan"], s["team"]),
            10,
        ),
        x_row(
            "5. get_experiment (3 components) vs get_run",
            "n/a" if s["get"] is None else f"{s['get']:,.0f} µs",
            "n/a" if s["ml_get"] is None else f"{s['ml_get']:,.0f} µs",
            ratio(s["ml_get"], s["get"]),
            4,
        ),
        x_row(
            "6. cold start: spawn → first experiment committed",
            fmt_ms(s["cold"]),
            fmt_ms(s["ml_cold"]),
            ratio(s["ml_cold"], s["cold"]),
            4,
        ),
    ]
    if s["lag_p99"] is None:
        rows.append(Row("7. 1 ms sleeper under 64 saturating writers", "n/a", "", "", "", None))
    else:
        ok = s["lag_p99"] <= 2 and s["lag_max_worst"] <= 5
        rows.append(
            Row(
                f"7. 1 ms sleeper oversleep, {plan.lag_s:g} s of 64 saturating writers",
                f"p50 {s['lag_p50']:.2f} / p99 {s['lag_p99']:.2f} / "
                f"max {s['lag_max_worst']:.2f} ms",
                f"idle loop: p99 {s['idle_p99']:.2f} / max {s['idle_max']:.2f} ms",
                "—",
                "p99 ≤ 2 ms, max ≤ 5 ms",
                ok,
            )
        )
    rows.append(
        Row(
            f"8. peak RSS, the {n10}-experiment run",
            "n/a" if s["rss"] is None else f"{s['rss']:.1f} MB",
            "n/a" if s["ml_rss"] is None else f"MLflow {s['ml_rss']:.1f} MB",
            "—",
            "< 80 MB",
            None if s["rss"] is None else s["rss"] < 80,
        )
    )
    return rows, s


def render(
    rows: list[Row], s: dict[str, Any], raw: dict[str, Any], plan: Plan, meta: dict[str, Any]
) -> str:
    mark = {True: "PASS", False: "**MISS**", None: "ERROR"}
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run.py{' --quick' if meta['quick'] else ''}` "
        f"({meta['started']} → {meta['finished']}, {meta['elapsed']:.0f} s; machine below). "
        f"Medians of {plan.repeats} repeat(s), each in fresh subprocesses, the two sides "
        f"alternating (cold start: {plan.cold_pairs} pairs). "
        "How each figure is measured: bench/README.md.",
        "",
        "| target | healthchain | peer / reference | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.target} | {r.ours} | {r.peer} | {r.ratio} | {r.goal} | {mark[r.ok]} |")
    lines += [
        "",
        "## Context",
        "",
        f"- MLflow path: `SqlAlchemyStore` (the SQL tracking store under `MlflowClient`) on a "
        f"`sqlite:///` file switched to WAL: {fmt_rate(s['ml_seq'])}. For reference, "
        f"`MlflowClient.create_run`+`set_terminated`: {fmt_rate(s['ml_client'])}; the store on "
        f"MLflow's default rollback journal: {fmt_rate(s['ml_delete'])}. MLflow has no async API, "
        "so its sequential figure is the peer for target 2.",
        "- Each MLflow run carries the same 4 tags plus the 3 pipeline components as 3 more tags "
        "(`component.N` = JSON of name/type/stage), written in the same `create_run` call.",
        f"- Populating: ours {fmt_ms(s['pop_10k'])} for {plan.n_10k:,} and {fmt_ms(s['pop_100k'])} "
        f"for {plan.n_100k:,} through the tracker's own API (64 tasks, start+end each); MLflow "
        f"{fmt_ms(s['ml_pop_10k'])} for {plan.n_10k:,} through its ORM models in batches "
        "(its API would take ~80 s).",
        f"- Cold start in-process (first statement → committed, interpreter start excluded): ours "
        f"{fmt_ms(s['cold_inproc'])}, MLflow {fmt_ms(s['ml_cold_inproc'])}.",
        f"- Lag test: {fmt_rate(s['lag_writes'])} lifecycles during sampling; max is the worst "
        f"tick over all repeats (median of per-repeat max: "
        f"{fmt_num(s['lag_max_med'], 'ms')}).",
        f"- Peak RSS: the subprocess's own `ru_maxrss`; psutil sampling every 20 ms saw "
        f"{fmt_num(s['rss_psutil'], 'MB')}.",
        f"- Other processes on this shared machine used, on average over each subprocess, "
        f"{spread(s['foreign_ours'])} CPUs while ours ran and {spread(s['foreign_ml'])} while "
        "MLflow ran (median, max); each subprocess waited up to "
        f"{plan.quiet_wait_s:g} s for them to drop under 0.25 CPUs first, and one that ran "
        f"beside more than {NOISY_CPUS:g} CPUs of other work was measured again (the quieter "
        f"run kept), {plan.retry_budget_s:g} s of such repeats at most.",
        "",
        *machine_section(meta),
        *raw_section("Raw figures per repeat", raw),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = bench_parser(__doc__.splitlines()[0], HERE / "RESULTS.md")
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    add_run_options(parser)
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="PostgreSQL run: ours and raw asyncpg only"
    )
    parser.add_argument("--processes", type=int, help="PostgreSQL writers (default 8)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="PostgreSQL run at tiny sizes (the test suite's smoke run; implies --quick)",
    )
    args = parser.parse_args()
    args.quick = args.quick or args.smoke
    if args.processes is not None and not 1 <= args.processes <= 64:
        parser.error(f"--processes {args.processes}: give 1 to 64")
    server = postgres_server(parser, args)
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = Plan(**{**plan.__dict__, "repeats": args.repeats})
    out = results_path(args.out, args.quick, HERE / "RESULTS.md")

    status = 0
    text = pg_text = None
    with tempfile.TemporaryDirectory(prefix="healthchain-bench-", dir=args.tmp) as workdir:
        if args.only != "postgres":
            meta = machine(["mlflow-skinny", "psutil"])
            meta["quick"] = args.quick
            raw = collect(plan, Path(workdir))
            finish(meta)
            rows, s = summarize(raw, plan)
            text = render(rows, s, raw, plan, meta)
            print("\n" + text.split("## Context")[0])
            if any(r.ok is None for r in rows):
                status = 2  # a measurement failed: its subprocess's error is printed above
            elif args.strict and not all(r.ok for r in rows):
                status = 1
        if server is not None:
            import _pg_run

            pg_plan = _pg_run.SMOKE if args.smoke else _pg_run.QUICK if args.quick else _pg_run.FULL
            pg_text, complete = _pg_run.run_postgres(
                server, pg_plan, args.repeats, args.processes, Path(workdir),
                not args.no_mlflow,
            )  # fmt: skip
            print("\n" + pg_text.split("## Context")[0].split("\n", 1)[1])
            status = status or (0 if complete else 2)
    write_sections(out, text, pg_text)
    return status


if __name__ == "__main__":
    sys.exit(main())
