"""``healthchain experiments compare``: runs side by side, as the dashboard's compare page.

Params, tags and pipeline config with the keys whose values differ marked, and latest
metrics with the best of each marked, by the rule of :mod:`healthchain._compare`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from healthchain._compare import (
    LOWER_IS_BETTER_SUFFIXES,
    MISSING,
    MetricRow,
    ValueRow,
    compare_metrics,
    compare_values,
    differs,
)
from healthchain._formatting import SHORT_ID_LENGTH, format_duration, format_time
from healthchain.tracking import DEFAULT_STORAGE_URI, Experiment, RequestStats

from ._exceptions import CommandError
from ._options import StorageOption, open_tracker
from ._output import console, metric_text, param_text, print_out, status_text

__all__ = ["MAX_COMPARED", "MIN_COMPARED", "compare"]

MIN_COMPARED = 2
MAX_COMPARED = 10
"""How many experiments one ``compare`` puts side by side."""

DIFFERS = "≠"
"""Marks a key whose value is not the same in every run."""
BEST = "*"
"""Marks the best value of a metric."""

_BEST_RULE = (
    f"{BEST} best: highest, or lowest for metrics ending in "
    f"{', '.join(LOWER_IS_BETTER_SUFFIXES)}; {DIFFERS} the values differ"
)


def _table(title: str, headers: Sequence[str]) -> Table:
    # no side borders: more room for the runs' columns at 80 characters
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.add_column("", no_wrap=True)  # the differs mark
    table.add_column("key", overflow="fold")
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _cell(value: object) -> Text:
    return Text("" if value is MISSING else param_text(value))


def _values_table(title: str, headers: Sequence[str], rows: Sequence[ValueRow]) -> Table | str:
    if not rows:
        return f"{title}: none recorded"
    table = _table(title, headers)
    for row in rows:
        style = "bold" if row.differs else ""
        table.add_row(
            DIFFERS if row.differs else "",
            Text(row.key, style=style),
            *(_cell(value) for value in row.values),
        )
    return table


def _metrics_table(headers: Sequence[str], rows: Sequence[MetricRow]) -> Table | str:
    if not rows:
        return "latest metrics: none recorded"
    table = _table("latest metrics", headers)
    for column in table.columns[2:]:
        column.justify = "right"
    for row in rows:
        cells = []
        for i, value in enumerate(row.values):
            text = "" if value is None else metric_text(value)
            best = i in row.best
            cells.append(
                Text(f"{text} {BEST}" if best else text, style="bold green" if best else "")
            )
        table.add_row(DIFFERS if differs(row.values) else "", Text(row.key), *cells)
    return table


def _runs_table(
    headers: Sequence[str], experiments: Sequence[Experiment], stats: Sequence[RequestStats]
) -> Table:
    table = _table("experiments", headers)

    def add(key: str, cells: Sequence[str | Text]) -> None:
        table.add_row("", key, *cells)

    add("name", [Text(e.name) for e in experiments])
    add("project", [Text(e.project) for e in experiments])
    add("status", [status_text(e.status) for e in experiments])
    add("start (UTC)", [format_time(e.start_time) for e in experiments])
    add("duration", [format_duration(e.duration) or "running" for e in experiments])
    add("requests", [f"{s.count:,} ({s.failures:,} failed)" for s in stats])
    add("p50 / p95", [_latency(s) for s in stats])
    return table


def _latency(stats: RequestStats) -> str:
    if stats.p50_ms is None or stats.p95_ms is None:
        return ""
    return f"{stats.p50_ms:.1f} / {stats.p95_ms:.1f} ms"


def compare(
    experiment_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="ID",
            help=f"{MIN_COMPARED} to {MAX_COMPARED} experiment ids, or unique prefixes of them.",
        ),
    ],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
) -> None:
    """Compare experiments side by side: params, tags, pipeline config and latest metrics.

    Keys whose values differ between the experiments are marked ≠, and the best value of
    each metric *: the highest, or the lowest for metrics whose key ends in _ms, loss,
    error, errors or failures (latencies, losses, failure counts).
    """
    if not MIN_COMPARED <= len(experiment_ids) <= MAX_COMPARED:
        raise CommandError(
            f"compare takes {MIN_COMPARED} to {MAX_COMPARED} experiments, got "
            f"{len(experiment_ids)} ({' '.join(map(repr, experiment_ids))}); name "
            f"{'another' if len(experiment_ids) < MIN_COMPARED else 'fewer'}"
        )
    with open_tracker(storage_uri) as tracker:
        ids = [tracker.resolve_id(given) for given in experiment_ids]
        for i, experiment_id in enumerate(ids):
            if experiment_id in ids[:i]:
                raise CommandError(
                    f"{experiment_ids[i]!r} names the same experiment as "
                    f"{experiment_ids[ids.index(experiment_id)]!r} ({experiment_id}); "
                    "compare different experiments"
                )
        experiments = [tracker.get_experiment(i) for i in ids]
        stats = [tracker.request_stats(i) for i in ids]
        short = tracker.abbreviate_ids(ids, SHORT_ID_LENGTH)
    headers = [short[i] for i in ids]
    out = console()
    print_out(
        out,
        _runs_table(headers, experiments, stats),
        _values_table("params", headers, compare_values([e.params for e in experiments])),
        _metrics_table(headers, compare_metrics([e.metrics for e in experiments])),
        _values_table("tags", headers, compare_values([e.tags for e in experiments])),
        _values_table(
            "pipeline config",
            headers,
            compare_values([e.pipeline_config for e in experiments]),
        ),
        _BEST_RULE,
    )
