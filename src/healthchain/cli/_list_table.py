"""The ``experiments list`` table, fitted to the console's width.

Columns are given up in one stated order (:data:`FIT_ORDER`) until the table fits; ids,
names up to :data:`NAME_WIDTH` characters, statuses and the metric and param columns the
user asked for always show whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from healthchain._formatting import format_duration, format_time
from healthchain.tracking import Experiment

from ._exceptions import CommandError
from ._output import metric_text, param_text, status_text, tags_text

__all__ = [
    "DEFAULT_METRIC_COLUMNS",
    "FIT_ORDER",
    "MAX_COLUMNS",
    "NAME_WIDTH",
    "ValueColumn",
    "common_metric_columns",
    "list_table",
    "order_words",
    "parse_columns",
]

NAME_WIDTH = 20
"""Names up to this many characters always show whole, on one line."""

_TAGS_MIN = 10  # narrower than this, shortened tags say too little to be worth a column

FIT_ORDER = (
    "tags are shortened with '…'",
    "the project column is dropped",
    "start times lose their year and seconds",
    "the duration column is dropped",
    "the tags column is dropped",
    "metric columns nobody asked for are dropped, least common first",
    "the start column is dropped",
    f"names longer than {NAME_WIDTH} characters wrap",
)
"""What ``experiments list`` gives up, in this order, until the table fits the terminal."""


DEFAULT_METRIC_COLUMNS = 4
"""Metric columns shown unasked: the keys most of the listed experiments have."""


class ValueColumn(NamedTuple):
    """A column of one metric's latest value or one param's value."""

    kind: Literal["metrics", "params"]
    key: str

    def cell(self, experiment: Experiment) -> Text:
        if self.kind == "metrics":
            value = experiment.metrics.get(self.key)
            return Text("" if value is None else metric_text(value))
        found = self.key in experiment.params
        return Text(param_text(experiment.params[self.key]) if found else "")


def common_metric_columns(
    experiments: Sequence[Experiment], count: int = DEFAULT_METRIC_COLUMNS
) -> list[ValueColumn]:
    """The ``count`` metric keys most of ``experiments`` have, most common first (ties by
    key)."""
    counts = Counter(key for e in experiments for key in e.metrics)
    ranked = sorted(counts, key=lambda key: (-counts[key], key))
    return [ValueColumn("metrics", key) for key in ranked[:count]]


MAX_COLUMNS = 20
"""Metric and param columns ``--columns`` may pick."""

_METRICS, _PARAMS = "metrics.", "params."
_COLUMNS_HELP = "name each as KEY or metrics.KEY for a metric, params.KEY for a param"


def parse_columns(texts: Sequence[str]) -> list[ValueColumn]:
    """``--columns`` values (comma-separated, repeatable) as columns, in order, each once."""
    columns: list[ValueColumn] = []
    for text in texts:
        for part in text.split(","):
            item = part.strip()
            kind: Literal["metrics", "params"] = "params" if item.startswith(_PARAMS) else "metrics"
            key = item.removeprefix(_PARAMS if kind == "params" else _METRICS)
            if not key:
                raise CommandError(f"--columns {text!r} names an empty column; {_COLUMNS_HELP}")
            column = ValueColumn(kind, key)
            if column not in columns:
                columns.append(column)
    if len(columns) > MAX_COLUMNS:
        raise CommandError(
            f"--columns {','.join(texts)!r} picks {len(columns)} columns; at most "
            f"{MAX_COLUMNS} fit a table: pick fewer"
        )
    return columns


_ORDER_WORDS = {
    "start_time": ("start time", "oldest first", "newest first"),
    "name": ("name", "A to Z", "Z to A"),
    "duration": ("duration", "shortest first", "longest first"),
}


def order_words(keys: Sequence[str]) -> str:
    """Valid ``order_by`` keys as words: ``acc (highest first), then name (A to Z)``."""
    words = []
    for key in keys:
        descending = key.startswith("-")
        field = key[1:] if descending else key
        if field.startswith(_METRICS):
            label, up, down = field.removeprefix(_METRICS), "lowest first", "highest first"
        else:
            label, up, down = _ORDER_WORDS[field]
        words.append(f"{label} ({down if descending else up})")
    return ", then ".join(words)


@dataclass(frozen=True)
class _Layout:
    project: bool = True
    long_start: bool = True
    duration: bool = True
    tags: bool = True
    defaults: int = DEFAULT_METRIC_COLUMNS
    start: bool = True


def _layouts(defaults: int) -> list[_Layout]:
    """Each layout gives up one more thing than the one before, as FIT_ORDER says."""
    fewer = _Layout(project=False, long_start=False, duration=False, tags=False)
    return [
        _Layout(defaults=defaults),
        _Layout(project=False, defaults=defaults),
        _Layout(project=False, long_start=False, defaults=defaults),
        _Layout(project=False, long_start=False, duration=False, defaults=defaults),
        *(replace(fewer, defaults=n) for n in range(defaults, -1, -1)),
        replace(fewer, defaults=0, start=False),
    ]


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Experiment], Text]
    justify: JustifyMethod = "left"


def _columns(
    layout: _Layout, short_ids: Mapping[str, str], values: Sequence[ValueColumn]
) -> list[_Column]:
    columns = [
        _Column("id", lambda e: Text(short_ids.get(e.id, e.id))),
        _Column("name", lambda e: Text(e.name)),
    ]
    if layout.project:
        columns.append(_Column("project", lambda e: Text(e.project)))
    columns.append(_Column("status", lambda e: status_text(e.status)))
    if layout.start:
        columns.append(
            _Column(
                "start (UTC)",
                lambda e: Text(format_time(e.start_time, short=not layout.long_start)),
            )
        )
    if layout.duration:
        columns.append(
            _Column("duration", lambda e: Text(format_duration(e.duration) or "running"), "right")
        )
    for value in values:
        columns.append(
            _Column(value.key, value.cell, "right" if value.kind == "metrics" else "left")
        )
    if layout.tags:
        columns.append(_Column("tags", lambda e: Text(tags_text(e.tags))))
    return columns


def _table(title: str, columns: Sequence[_Column], widths: Sequence[int]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column, width in zip(columns, widths, strict=True):
        table.add_column(
            column.header, justify=column.justify, width=width, no_wrap=True, overflow="ellipsis"
        )
    return table


def _overhead(out: Console, columns: Sequence[_Column]) -> int:
    """Borders and padding of a table of these columns."""
    probe = _table("", columns, [1] * len(columns))
    probe.add_row(*(Text("x") for _ in columns))
    return Measurement.get(out, out.options, probe).maximum - len(columns)


def list_table(
    out: Console,
    title: str,
    experiments: Sequence[Experiment],
    short_ids: Mapping[str, str],
    picked: Sequence[ValueColumn] = (),
    defaults: Sequence[ValueColumn] = (),
) -> Table:
    """The table of ``experiments``, fitted to ``out``'s width (see :data:`FIT_ORDER`).

    ``picked`` metric and param columns always show; ``defaults`` (most common first)
    are dropped from the end while the table does not fit.
    """
    unasked = [column for column in defaults if column not in picked]
    layouts = _layouts(len(unasked))
    for layout in layouts:
        columns = _columns(layout, short_ids, [*picked, *unasked[: layout.defaults]])
        rows = [[c.cell(e) for c in columns] for e in experiments]
        natural = [
            max([cell_len(c.header), *(row[i].cell_len for row in rows)])
            for i, c in enumerate(columns)
        ]
        name = columns.index(next(c for c in columns if c.header == "name"))
        widths = list(natural)
        widths[name] = min(natural[name], NAME_WIDTH)
        spare = out.width - _overhead(out, columns) - sum(widths)
        if layout.tags:
            tags = len(columns) - 1
            if spare < 0 and widths[tags] + spare >= max(_TAGS_MIN, cell_len("tags")):
                widths[tags] += spare  # shortened with an ellipsis
                spare = 0
        if spare >= 0 or layout is layouts[-1]:
            break
    # Names longer than NAME_WIDTH take what room is left, and wrap only past it.
    widths[name] += max(0, min(spare, natural[name] - widths[name]))
    table = _table(title, columns, widths)
    # Below the narrowest layout Rich squeezes the table: an id, a name or a picked
    # column then wraps rather than lose characters.
    kept = [i for i, c in enumerate(columns) if c.header in {v.key for v in picked}]
    for i in (0, name, *kept):
        table.columns[i].no_wrap, table.columns[i].overflow = False, "fold"
    for row in rows:
        table.add_row(*row)
    return table
