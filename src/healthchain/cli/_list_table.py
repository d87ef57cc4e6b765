"""The ``experiments list`` table, fitted to the console's width.

Columns are given up in one stated order (:data:`FIT_ORDER`) until the table fits; ids,
names up to :data:`NAME_WIDTH` characters and statuses always show whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from healthchain._formatting import format_duration, format_time
from healthchain.tracking import Experiment

from ._output import status_text, tags_text

__all__ = ["FIT_ORDER", "NAME_WIDTH", "list_table"]

NAME_WIDTH = 20
"""Names up to this many characters always show whole, on one line."""

_TAGS_MIN = 10  # narrower than this, shortened tags say too little to be worth a column

FIT_ORDER = (
    "tags are shortened with '…'",
    "the project column is dropped",
    "start times lose their year and seconds",
    "the duration column is dropped",
    "the tags column is dropped",
    f"names longer than {NAME_WIDTH} characters wrap",
)
"""What ``experiments list`` gives up, in this order, until the table fits the terminal."""


@dataclass(frozen=True)
class _Layout:
    project: bool = True
    long_start: bool = True
    duration: bool = True
    tags: bool = True


# Each layout gives up one more thing than the one before, as FIT_ORDER says.
_LAYOUTS = (
    _Layout(),
    _Layout(project=False),
    _Layout(project=False, long_start=False),
    _Layout(project=False, long_start=False, duration=False),
    _Layout(project=False, long_start=False, duration=False, tags=False),
)


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Experiment], Text]
    justify: JustifyMethod = "left"


def _columns(layout: _Layout, short_ids: Mapping[str, str]) -> list[_Column]:
    columns = [
        _Column("id", lambda e: Text(short_ids.get(e.id, e.id))),
        _Column("name", lambda e: Text(e.name)),
    ]
    if layout.project:
        columns.append(_Column("project", lambda e: Text(e.project)))
    columns.append(_Column("status", lambda e: status_text(e.status)))
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
    out: Console, title: str, experiments: Sequence[Experiment], short_ids: Mapping[str, str]
) -> Table:
    """The table of ``experiments``, fitted to ``out``'s width (see :data:`FIT_ORDER`)."""
    for layout in _LAYOUTS:
        columns = _columns(layout, short_ids)
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
        if spare >= 0 or layout is _LAYOUTS[-1]:
            break
    # Names longer than NAME_WIDTH take what room is left, and wrap only past it.
    widths[name] += max(0, min(spare, natural[name] - widths[name]))
    table = _table(title, columns, widths)
    # Below the narrowest layout Rich squeezes the table: an id or name then wraps rather
    # than lose characters.
    for i in (0, name):
        table.columns[i].no_wrap, table.columns[i].overflow = False, "fold"
    for row in rows:
        table.add_row(*row)
    return table
