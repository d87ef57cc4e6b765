"""How commands print: Rich tables on a terminal, JSON documents, CSV and JSON Lines."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from typing import IO, Any

import typer
from rich.console import Console, RenderableType
from rich.segment import Segment, Segments
from rich.text import Text

from healthchain._filters import format_tag
from healthchain._formatting import EXPERIMENT_COLUMNS, experiment_record
from healthchain.tracking import Experiment, ExperimentStatus, RequestStats

__all__ = [
    "console",
    "echo_json",
    "metric_text",
    "param_text",
    "print_out",
    "requests_doc",
    "status_text",
    "tags_text",
    "write_csv",
    "write_jsonl",
]


_PIPED_WIDTH = 1000


def console() -> Console:
    """A console for tables: the terminal's width (``COLUMNS`` if set), else 1,000 columns.

    Piped with no ``COLUMNS``, there is no width to respect: tables keep every column.
    """
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, width=_PIPED_WIDTH)
    return out


def _trimmed(line: list[Segment]) -> list[Segment]:
    """The line without the spaces Rich pads cells and titles with at its end."""
    while line and not line[-1].control and not line[-1].text.rstrip():
        line.pop()
    if line and not line[-1].control:
        text, style, control = line[-1]
        line[-1] = Segment(text.rstrip(), style, control)
    return line


def print_out(out: Console, *renderables: RenderableType) -> None:
    """Print on ``out`` with no trailing spaces on any line (they would be in a pipe)."""
    for renderable in renderables:
        for line in out.render_lines(renderable, pad=False, new_lines=False):
            out.print(Segments([*_trimmed(line), Segment.line()]), soft_wrap=True)


def echo_json(document: Any) -> None:
    """One indented JSON document on stdout."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def tags_text(tags: dict[str, Any]) -> str:
    """Tags as the filters that match them, sorted by key."""
    return ", ".join(format_tag(k, v) for k, v in sorted(tags.items()))


def metric_text(value: float) -> str:
    """A metric value in a table: four significant digits (``0.8123``, ``1.235e+04``),
    ``NaN``, ``inf``."""
    return "NaN" if math.isnan(value) else f"{value:.4g}"


def param_text(value: Any) -> str:
    """A param, tag or config value in a table: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_STATUS_STYLE = {
    ExperimentStatus.RUNNING: "bold blue",
    ExperimentStatus.COMPLETED: "bold green",
    ExperimentStatus.FAILED: "bold red",
    ExperimentStatus.INTERRUPTED: "bold yellow",
}


def status_text(status: ExperimentStatus) -> Text:
    """The status name in its colour."""
    return Text(status.value, style=_STATUS_STYLE[status])


def requests_doc(stats: RequestStats) -> dict[str, Any]:
    """The request summary as a JSON-ready dict."""
    return {
        "count": stats.count,
        "failures": stats.failures,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
    }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):  # tags, pipeline config, components
        return json.dumps(value, ensure_ascii=False)
    return value


def write_csv(out: IO[str], experiments: Sequence[Experiment]) -> None:
    """A header of every column, then one row per experiment; JSON for nested values."""
    writer = csv.writer(out)
    writer.writerow(EXPERIMENT_COLUMNS)
    for experiment in experiments:
        writer.writerow(_csv_cell(v) for v in experiment_record(experiment).values())


def write_jsonl(out: IO[str], experiments: Sequence[Experiment]) -> None:
    """One JSON record per line."""
    for experiment in experiments:
        out.write(json.dumps(experiment_record(experiment), ensure_ascii=False) + "\n")
