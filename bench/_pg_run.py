"""``run.py``'s PostgreSQL run (issue 15): the tracker over asyncpg against MLflow's
``SqlAlchemyStore`` over psycopg2, each beside the raw-asyncpg figure of the same work.

Every figure comes from a fresh subprocess on a fresh database of the server it is given
(``_pg``: ``hcbench_<run>_*``, dropped after); within each repeat the two sides alternate
which goes first, and the table shows medians over the repeats. The rows and their
goals are issue 15's; row 5 is 8 processes x 64 tasks on one database (``_pg_writers``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _harness import (
    SECOND_SECTION,
    field_of,
    finish,
    fmt_rate,
    fmt_x,
    machine,
    machine_section,
    med,
    ratio,
    raw_section,
    spread,
)
from _pg import drop_prefixed, new_prefix
from _pg_writers import eight_writers
from _runner import Measurer, wait_for_quiet

__all__ = ["FULL", "MARKER", "QUICK", "SMOKE", "PgPlan", "run_postgres"]

MARKER = SECOND_SECTION


@dataclass(frozen=True)
class PgPlan:
    repeats: int
    seq_n: int
    blocks: int
    concurrent_n: int
    n_data: int
    query_reps: int
    gets: int
    mlflow_gets: int
    raw_batches: int
    processes: int
    writers_each: int
    quiet_wait_s: float


FULL = PgPlan(3, 250, 3, 4000, 3000, 5, 2000, 300, 100, 8, 1500, 10.0)
QUICK = PgPlan(1, 60, 1, 640, 600, 2, 200, 30, 10, 8, 128, 0.0)
SMOKE = PgPlan(1, 20, 1, 128, 150, 1, 20, 10, 2, 2, 64, 0.0)
"""``--smoke``: the test suite's check that every part of the run works, in seconds."""


def children(plan: PgPlan, server: str, prefix: str, tmp: str) -> dict[str, list[str]]:
    """Each measured subprocess: key -> (script, scenario, options). ``ml_``: MLflow's."""
    pg = {"postgres": server, "prefix": prefix, "tmp": tmp}
    micro = {**pg, "n": plan.seq_n, "blocks": plan.blocks, "concurrent_n": plan.concurrent_n}
    data = {**pg, "n": plan.n_data, "reps": plan.query_reps}
    raw = {**pg, "n": plan.seq_n, "blocks": plan.blocks, "batches": plan.raw_batches}
    return {
        "micro": ["_ours.py", "micro", json.dumps(micro)],
        "ml_lifecycle": ["_mlflow.py", "lifecycle", json.dumps({**micro, "warmup": 20})],
        "raw_writes": ["_pg_raw.py", "writes", json.dumps(raw)],
        "data": ["_ours.py", "data", json.dumps({**data, "gets": plan.gets})],
        "ml_data": ["_mlflow.py", "data", json.dumps({**data, "gets": plan.mlflow_gets})],
    }


def collect(
    plan: PgPlan, server: str, workdir: Path, with_mlflow: bool
) -> dict[str, list[dict[str, Any]]]:
    prefix = new_prefix()
    planned = children(plan, server, prefix, str(workdir))
    keys = [k for k in planned if with_mlflow or not k.startswith("ml_")]
    raw: dict[str, list[dict[str, Any]]] = {k: [] for k in [*keys, "writers"]}
    measure = Measurer(workdir, plan.quiet_wait_s)
    print(f"PostgreSQL: databases {prefix}* on the server, dropped after", flush=True)
    try:
        for rep in range(plan.repeats):
            print(f"PostgreSQL repeat {rep + 1}/{plan.repeats}", flush=True)
            # Odd repeats: each MLflow measurement before the one of ours it follows.
            order = list(keys)
            if rep % 2:
                for a, b in (("micro", "ml_lifecycle"), ("data", "ml_data")):
                    if b in order:
                        i, j = order.index(a), order.index(b)
                        order[i], order[j] = order[j], order[i]
            for key in order:
                raw[key].append(measure(" ".join(planned[key][:2]), planned[key]).record())
            print(f"  {plan.processes} processes x 64 tasks ...", end=" ", flush=True)
            if plan.quiet_wait_s:
                wait_for_quiet(plan.quiet_wait_s)
            try:
                writers: dict[str, Any] = {"result": eight_writers(
                    server, prefix, plan.processes, plan.writers_each), "error": None}  # fmt: skip
                print(f"{writers['result']['span_s']:.1f} s", flush=True)
            except (RuntimeError, OSError) as exc:
                print(f"FAILED: {exc}", flush=True)
                writers = {"result": None, "error": str(exc)}
            raw["writers"].append(writers)
    finally:
        left = drop_prefixed(server, prefix)
        if left:
            print(f"  dropped {len(left)} database(s) a subprocess left behind", flush=True)
    return raw


@dataclass
class PgRow:
    what: str
    mlflow: str
    ours: str
    driver: str
    ratio: str
    of_driver: str
    goal: str
    ok: bool | None


def _us(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f} µs"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1e3:,.1f} ms"


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


_FORMS = {
    "executemany": "executemany",
    "multi_row": "multi-row from arrays",
    "from_json": "multi-row, tag and component rows from the JSON",
}


def _form(raw: dict[str, Any]) -> str:
    """How the same-rows raw figure was written (the faster form, of the last repeat)."""
    forms = [e["result"]["raw_full_form"] for e in raw.get("raw_writes", []) if e["result"]]
    return _FORMS.get(forms[-1] if forms else "", "n/a")


def summarize(raw: dict[str, Any], plan: PgPlan) -> tuple[list[PgRow], dict[str, Any]]:
    def m(key: str, *path: str) -> float | None:
        return med(field_of(raw.get(key, []), *path))

    s: dict[str, Any] = {
        "seq": m("micro", "seq_rate"),
        "conc": m("micro", "conc_rate"),
        "ml_seq": m("ml_lifecycle", "store_rate"),
        "ml_client": m("ml_lifecycle", "client_rate"),
        "raw_seq": m("raw_writes", "raw_seq_rate"),
        "raw_batch": m("raw_writes", "raw_batch_rate"),
        "raw_full": m("raw_writes", "raw_full_rate"),
        "list": m("data", "list_s"),
        "ml_search": m("ml_data", "search_s"),
        "raw_join": m("data", "raw_tag_join_s"),
        "raw_list": m("data", "raw_list_s"),
        "get": m("data", "get_us"),
        "ml_get": m("ml_data", "get_run_us"),
        "raw_key": m("data", "raw_by_key_us"),
        "full_em": m("raw_writes", "raw_full_by_form", "executemany"),
        "full_multi": m("raw_writes", "raw_full_by_form", "multi_row"),
        "full_json": m("raw_writes", "raw_full_by_form", "from_json"),
        "agg": m("writers", "aggregate_rate"),
        "pop": m("data", "populate_s"),
        "ml_pop": m("ml_data", "populate_s"),
    }
    lost = [e["result"]["none_lost"] for e in raw["writers"] if e["result"]]
    s["none_lost"] = all(lost) if lost else None
    s["rows_seen"] = [e["result"]["rows"] for e in raw["writers"] if e["result"]]
    n = f"{plan.n_data:,}"

    def row(what: str, ml: str, ours: str, drv: str, r: float | None, share: float | None,
            goal: float, same_rows: float | None = None) -> PgRow:  # fmt: skip
        ok = None if r is None else r >= goal
        of_driver = _share(share) + ("" if same_rows is None else f"; {_share(same_rows)}")
        return PgRow(what, ml, ours, drv, fmt_x(r), of_driver, f"≥ {goal:g}x", ok)

    rows = [
        row("1. start+end lifecycle, awaited one after another", fmt_rate(s["ml_seq"]),
            fmt_rate(s["seq"]), fmt_rate(s["raw_seq"]) + " (insert, update, autocommit)",
            ratio(s["seq"], s["ml_seq"]), ratio(s["seq"], s["raw_seq"]), 10),
        row("2. the same from 64 concurrent tasks", fmt_rate(s["ml_seq"]) + " (sequential)",
            fmt_rate(s["conc"]), fmt_rate(s["raw_batch"]) + " (64 per transaction, executemany, "
            f"experiments rows only); {fmt_rate(s['raw_full'])} (the same rows as ours, "
            f"{_form(raw)})", ratio(s["conc"], s["ml_seq"]), ratio(s["conc"], s["raw_batch"]),
            100, ratio(s["conc"], s["raw_full"])),
        row(f"3. tag filter, a third of {n} match", _ms(s["ml_search"]), _ms(s["list"]),
            _ms(s["raw_join"]) + " (the tag join, rows only); " + _ms(s["raw_list"])
            + " (the tracker's two queries, `Experiment(*row)` undecoded)",
            ratio(s["ml_search"], s["list"]), ratio(s["raw_join"], s["list"]), 40,
            ratio(s["raw_list"], s["list"])),
        row("4. `get_experiment` vs `get_run`", _us(s["ml_get"]), _us(s["get"]),
            _us(s["raw_key"]) + " (one row by key)", ratio(s["ml_get"], s["get"]),
            ratio(s["raw_key"], s["get"]), 10),
    ]  # fmt: skip
    rows.append(
        PgRow(
            f"5. {plan.processes} processes x 64 tasks on one database (aggregate)",
            "—",
            fmt_rate(s["agg"]),
            fmt_rate(s["conc"]) + " (one process, 64 tasks: row 2)",
            fmt_x(ratio(s["agg"], s["conc"])),
            "—",
            "none lost",
            s["none_lost"],
        )
    )
    return rows, s


def render(
    rows: list[PgRow], s: dict[str, Any], raw: dict[str, Any], plan: PgPlan, meta: dict[str, Any]
) -> str:
    mark = {True: "MET", False: "**MISS**", None: "not measured"}
    version = next(
        (e["result"]["mlflow_version"] for e in raw.get("ml_lifecycle", []) if e["result"]),
        "not run",
    )
    foreign_ours = [v for k in ("micro", "data", "raw_writes")
                    for v in field_of(raw.get(k, []), "foreign_cpus")]  # fmt: skip
    foreign_ml = [v for k in ("ml_lifecycle", "ml_data")
                  for v in field_of(raw.get(k, []), "foreign_cpus")]  # fmt: skip
    lines = [
        MARKER,
        "# PostgreSQL",
        "",
        f"Written by `python bench/run.py{' --quick' if meta['quick'] else ''}` with a server "
        f"URL ({meta['started']} → {meta['finished']}, {meta['elapsed']:.0f} s). Medians of "
        f"{plan.repeats} repeat(s), each figure from a fresh subprocess on a fresh database, "
        f"the two sides alternating. MLflow {version}: `SqlAlchemyStore` over psycopg2; the "
        "tracker over asyncpg; raw asyncpg: one connection, plain statements on the tracker's "
        "tables. How each figure is measured: bench/README.md.",
        "",
        "| measure | MLflow on PostgreSQL | healthchain | raw asyncpg, same server | ratio "
        "| share of the driver | goal | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.what} | {r.mlflow} | {r.ours} | {r.driver} | {r.ratio} | {r.of_driver} "
            f"| {r.goal} | {mark[r.ok]} |"
        )
    lines += [
        "",
        "## Context (PostgreSQL)",
        "",
        f"- MLflow's `MlflowClient.create_run`+`set_terminated` (the client over the same "
        f"store): {fmt_rate(s['ml_client'])}.",
        "- Raw asyncpg writing the same rows as ours (the experiments row, 4 tag rows, 3 "
        "component rows, the end's update; 64 lifecycles per transaction), each form: "
        f"executemany {fmt_rate(s['full_em'])}, multi-row from arrays "
        f"{fmt_rate(s['full_multi'])}, multi-row with the tag and component rows drawn on "
        f"the server from the JSON (as ours) {fmt_rate(s['full_json'])}; row 2 shows the "
        "fastest.",
        f"- Populating {plan.n_data:,}: ours {_ms(s['pop'])} through the tracker's API "
        f"(64 tasks, start+end each); MLflow {_ms(s['ml_pop'])} through its ORM models.",
        "- Share of the driver: how much of the raw-asyncpg figure the tracker reaches "
        "(rates: ours / raw; times: raw / ours); row 2: of the experiments-rows-only figure, "
        "then of the same rows as ours; row 3: of the rows only, then of the undecoded "
        "records.",
        "- The ratio each row would have if the tracker cost nothing above its raw "
        f"reference (MLflow / raw): row 1 {fmt_x(ratio(s['raw_seq'], s['ml_seq']))}, row 2 "
        f"{fmt_x(ratio(s['raw_full'], s['ml_seq']))} (the same rows as ours), row 3 "
        f"{fmt_x(ratio(s['ml_search'], s['raw_list']))} (the undecoded records), row 4 "
        f"{fmt_x(ratio(s['ml_get'], s['raw_key']))}.",
        f"- Row 5: rows counted afterwards per status, each repeat: {s['rows_seen']} "
        f"(expected all COMPLETED: {plan.processes} x ({plan.writers_each:,} measured + "
        "128 warm-up) per repeat).",
        f"- Other processes used {spread(foreign_ours)} CPUs (median, max) while ours ran "
        f"and {spread(foreign_ml)} while MLflow ran.",
        "",
        *machine_section(meta),
        *raw_section("Raw PostgreSQL figures per repeat", raw),
    ]
    return "\n".join(lines)


def run_postgres(
    server: str, plan: PgPlan, repeats: int | None, processes: int | None, workdir: Path,
    with_mlflow: bool,
) -> tuple[str, bool]:  # fmt: skip
    """Measure, summarise, render: the section's markdown, and whether every figure came."""
    quick = plan != FULL
    if repeats:
        plan = replace(plan, repeats=repeats)
    if processes:
        plan = replace(plan, processes=processes)
    meta = machine(["mlflow-skinny", "psutil", "asyncpg", "psycopg2-binary"])
    meta["quick"] = quick
    raw = collect(plan, server, workdir, with_mlflow)
    finish(meta)
    rows, s = summarize(raw, plan)
    text = render(rows, s, raw, plan, meta)
    complete = all(not e["error"] for entries in raw.values() for e in entries)
    return text, complete and s["none_lost"] is not False
