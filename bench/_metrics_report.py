"""How ``bench_metrics.py``'s results read: the table of :func:`render` and the context
under it (what ran, per-round figures, the other processes' CPU), for the SQLite run or,
as the file's second section, the PostgreSQL one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from _harness import SECOND_SECTION, Row, field_of, fmt_ms, fmt_rate, machine_section, spread

if TYPE_CHECKING:
    from bench_metrics import Plan

__all__ = ["render"]


def render(
    rows: list[Row],
    s: dict[str, Any],
    raw: dict[str, Any],
    plan: Plan,
    meta: dict[str, Any],
    with_mlflow: bool,
) -> str:
    mark: dict[bool | None, str] = {True: "MET", False: "**MISS**", None: "not measured"}
    version = next(
        (e["result"]["mlflow_version"] for e in raw.get("ml_log_metric", []) if e["result"]),
        "not run",
    )
    pg = "sqlite" not in raw
    where = (
        (f"a fresh PostgreSQL database, the two sides alternating; MLflow {version} through "
         "`MlflowClient` over psycopg2, the tracker over asyncpg")
        if pg else
        (f"a fresh SQLite file, the two sides alternating; MLflow {version} through "
         "`MlflowClient` on a `sqlite:///` file in WAL mode")
    )  # fmt: skip
    lines = [
        *([SECOND_SECTION, "# PostgreSQL"] if pg else ["# Metrics benchmark"]),
        "",
        f"Written by `python bench/bench_metrics.py{' --quick' if meta['quick'] else ''}"
        f"{'' if with_mlflow else ' --no-mlflow'}`"
        f"{' with a server URL' if pg else ''}. Medians of {plan.rounds} round(s), every "
        f"figure from a fresh subprocess on {where}. How each figure is measured: "
        "bench/README.md.",
        "",
        "| measurement | healthchain | MLflow / reference | ratio | goal | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark_r = "reference" if r.goal == "reference" and r.ok else mark[r.ok]
        lines.append(f"| {r.target} | {r.ours} | {r.peer} | {r.ratio} | {r.goal} | {mark_r} |")
    same = {True: "the same", False: "**different**", None: "not compared"}[s["same_order"]]
    lines += [
        "",
        "## Context (PostgreSQL)" if pg else "## Context",
        "",
        *(
            [
                "- Row 6 (the event loop's lag while logging) is measured on SQLite only: the "
                "loop's share of the work is the same on both backends."
            ]
            if pg
            else []
        ),
        f"- Row 5 matched {_count(s['matches'])} experiments on our side and "
        f"{_count(s['ml_matches'])} runs on MLflow's; the first 20 of each, in order: {same}.",
        *(
            []
            if pg
            else [
                f"- Row 6: {fmt_rate(s['lag_rate'])} points logged while the sleeper ran; max is "
                "the worst tick of all rounds, p50 and p99 medians over rounds."
            ]
        ),
        f"- Per round: {_per_round(raw)}.",
        f"- Other processes on this shared machine used {spread(_foreign(raw, False))} CPUs "
        f"(median, max) while ours ran and {spread(_foreign(raw, True))} while MLflow ran; "
        f"each subprocess first waited up to {plan.quiet_wait_s:g} s for them to drop under "
        "0.25 CPUs.",
        "",
        *machine_section(meta),
    ]
    return "\n".join(lines)


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _foreign(raw: dict[str, list[dict[str, Any]]], mlflow: bool) -> list[float]:
    return [
        v for key, entries in raw.items() if key.startswith("ml_") == mlflow
        for v in field_of(entries, "foreign_cpus")
    ]  # fmt: skip


def fmt_lag(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _per_round(raw: dict[str, list[dict[str, Any]]]) -> str:
    shown: list[tuple[str, str, Callable[[float | None], str]]] = [
        ("sequential", "rate", fmt_rate),
        ("concurrent", "rate", fmt_rate),
        ("batch", "rate", fmt_rate),
        ("ml_log_metric", "rate", fmt_rate),
        ("ml_log_batch", "rate", fmt_rate),
        ("history", "seconds", fmt_ms),
        ("ml_history", "seconds", fmt_ms),
        ("search", "seconds", fmt_ms),
        ("ml_search", "seconds", fmt_ms),
        ("lag", "load.p99_ms", fmt_lag),
        ("lag", "load.max_ms", fmt_lag),
        ("sqlite", "rate", fmt_rate),
        ("asyncpg", "rate", fmt_rate),
        ("asyncpg", "copy_rate", fmt_rate),
        ("asyncpg", "seq_rate", fmt_rate),
        ("search_floor", "seconds", fmt_ms),
        ("history_floor", "rows.seconds", fmt_ms),
        ("history_floor", "arrays.seconds", fmt_ms),
    ]
    return "; ".join(
        f"{key} {field.removesuffix('.seconds').split('.')[-1]} "
        + ", ".join(fmt(v) for v in field_of(raw[key], *field.split(".")))
        for key, field, fmt in shown
        if key in raw
    )
