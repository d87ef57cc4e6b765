"""The experiments list page's parts: its query string read, its columns chosen, its
links and rows built.

Pure functions over tracker records and query text; ``_app`` awaits the tracker and
renders. A row is HTML built here rather than in the template: a page of 500 rows is the
dashboard's hot path, and Jinja's per-substitution escaping was most of its server time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

from markupsafe import Markup, escape
from starlette.datastructures import QueryParams

from healthchain._filters import format_tag, parse_tag
from healthchain._formatting import format_duration
from healthchain.tracking import Experiment, ExperimentStatus, InvalidFilterError

from ._experiment import format_metric

__all__ = [
    "AUTO_METRIC_COLUMNS",
    "AUTO_PARAM_COLUMNS",
    "REQUESTS_METRIC",
    "REQUEST_P95_METRIC",
    "HeaderCell",
    "ListQuery",
    "Links",
    "PageColumns",
    "active_filters",
    "choose_columns",
    "header_cells",
    "read_list_query",
    "row_html",
    "tag_value",
]

REQUESTS_METRIC = "requests"
REQUEST_P95_METRIC = "latency_p95_ms"
"""A sandbox run logs these (issue 12); the list shows them as its Requests and p95
columns, so they never take one of the automatic metric columns."""
AUTO_METRIC_COLUMNS = 4
AUTO_PARAM_COLUMNS = 2
"""Metric and param columns chosen for a page: the keys most of its rows have."""
MAX_PICKED_COLUMNS = 16
"""Columns ``?columns=`` may add (each is a cell per row)."""

_SORT_FIELDS = ("start_time", "name", "duration")
_SORT_HELP = (
    "sort by start_time, name, duration or metrics.<key>, with a leading - for descending "
    "(e.g. -metrics.acc)"
)
_COLUMN_HELP = "name columns as metrics.<key> or params.<key>, separated by commas"
DEFAULT_SORT = "-start_time"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What the list page was asked: filters as typed, the sort and the extra columns."""

    project: str = ""
    status: str = ""
    tags: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    sort: str = ""
    """As given (``-metrics.acc``); empty for the default, newest first."""
    columns: tuple[str, ...] = ()
    """Picked columns, ``metrics.<key>`` or ``params.<key>``."""
    parsed_tags: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def order_by(self) -> str | None:
        """The tracker's ``order_by`` for :attr:`sort` (None: its default, newest first)."""
        return self.sort or None

    @property
    def effective_sort(self) -> str:
        return self.sort or DEFAULT_SORT


def _texts(params: QueryParams, name: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in params.getlist(name) if t.strip())


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else f"{text[:60]!r}... ({len(text):,} characters)"


def _checked_sort(text: str) -> str:
    field = text.removeprefix("-")
    metric = field.startswith("metrics.") and field.removeprefix("metrics.").strip()
    if field in _SORT_FIELDS or metric:
        return text  # the tracker checks the metric key itself
    raise InvalidFilterError(f"cannot sort by {_shown(text)}; {_SORT_HELP}")


def _picked_columns(texts: Iterable[str]) -> tuple[str, ...]:
    columns: list[str] = []
    for name in (c.strip() for text in texts for c in text.split(",")):
        kind, dot, key = name.partition(".")
        if name and (kind not in ("metrics", "params") or not dot or not key.strip()):
            raise InvalidFilterError(f"unknown column {_shown(name)}; {_COLUMN_HELP}")
        if name and name not in columns:
            columns.append(name)
    if len(columns) > MAX_PICKED_COLUMNS:
        raise InvalidFilterError(
            f"{len(columns):,} columns were picked; at most {MAX_PICKED_COLUMNS} may be"
        )
    return tuple(columns)


def read_list_query(params: QueryParams) -> ListQuery:
    """The list page's query string; a bad sort, column or tag raises
    :class:`InvalidFilterError` naming it (metric and param filters are parsed, once, by
    ``build_filters``)."""
    tags = _texts(params, "tag")
    sort = params.get("sort", "").strip()
    return ListQuery(
        project=params.get("project", "").strip(),
        status=params.get("status", "").strip(),
        tags=tags,
        metrics=_texts(params, "metric"),
        params=_texts(params, "param"),
        sort=_checked_sort(sort) if sort else "",
        columns=_picked_columns(params.getlist("columns")),
        parsed_tags=tuple(parse_tag(t) for t in tags),
    )


@dataclass(frozen=True, slots=True)
class PageColumns:
    """The columns of a page beyond the fixed ones: metric and param keys in order, and
    whether any row has a request count or p95 (a sandbox run's)."""

    metrics: tuple[str, ...]
    params: tuple[str, ...]
    picked_metrics: int = 0
    """How many of :attr:`metrics` (the first ones) were picked rather than chosen."""
    picked_params: int = 0
    requests: bool = False

    def css(self, kind: str, index: int) -> str:
        """The classes of the ``index``-th metric or param column's cells."""
        if kind == "metric":
            base, picked, chosen = "num metric", self.picked_metrics, AUTO_METRIC_COLUMNS
        else:
            base, picked, chosen = "param", self.picked_params, AUTO_PARAM_COLUMNS
        # The second half of the chosen columns is dropped on narrow windows (app.css);
        # picked ones never are.
        return f"{base} spare" if index - picked >= (chosen + 1) // 2 else base


def _most_common(counts: Counter[str], picked: Sequence[str], room: int) -> tuple[str, ...]:
    # Most rows first, then by key: the same page always shows the same columns.
    common = sorted((k for k in counts if k not in picked), key=lambda k: (-counts[k], k))
    return (*picked, *common[:room])


def choose_columns(experiments: Sequence[Experiment], query: ListQuery) -> PageColumns:
    """The page's metric and param columns: the keys most of its rows have (up to
    :data:`AUTO_METRIC_COLUMNS` and :data:`AUTO_PARAM_COLUMNS`) after those picked."""
    metric_counts: Counter[str] = Counter()
    param_counts: Counter[str] = Counter()
    for experiment in experiments:
        metric_counts.update(experiment.metrics.keys())
        param_counts.update(experiment.params.keys())
    requests = any(metric_counts[own] for own in (REQUESTS_METRIC, REQUEST_P95_METRIC))
    for own in (REQUESTS_METRIC, REQUEST_P95_METRIC):
        del metric_counts[own]
    picked_metrics = [c.partition(".")[2] for c in query.columns if c.startswith("metrics.")]
    picked_params = [c.partition(".")[2] for c in query.columns if c.startswith("params.")]
    return PageColumns(
        _most_common(metric_counts, picked_metrics, AUTO_METRIC_COLUMNS),
        _most_common(param_counts, picked_params, AUTO_PARAM_COLUMNS),
        len(picked_metrics),
        len(picked_params),
        requests,
    )


class Links:
    """URLs of the list page that keep what it was asked: another page, another sort, a
    tag added, a filter removed.

    The query string is assembled from pieces encoded once: a page of 50 rows links every
    one of its tags, and this is the hot path of rendering it.
    """

    __slots__ = ("_chips", "_fixed", "_pairs", "_params", "_root", "_sort", "_tags", "_tail")

    def __init__(self, root: str, query: ListQuery, per_page: int, default_per_page: int) -> None:
        self._root = root
        self._fixed: list[tuple[str, str]] = [
            (name, value)
            for name, value in (("project", query.project), ("status", query.status))
            if value
        ]
        self._fixed += [("metric", t) for t in query.metrics]
        self._fixed += [("param", t) for t in query.params]
        if query.columns:
            self._fixed.append(("columns", ",".join(query.columns)))
        self._sort = query.sort
        self._tail = "" if per_page == default_per_page else f"per_page={per_page}"
        self._params: dict[tuple[str, str], str] = {}
        self._chips: dict[tuple[str, str], str] = {}
        self._tags = {key: self._param(key, value) for key, value in query.parsed_tags}
        self._pairs = urlencode(self._fixed)

    def _param(self, key: str, value: Any) -> str:
        # Rows share most tag values (environment, model): quote each pair once.
        text = format_tag(key, value)
        param = self._params.get((key, text))
        if param is None:
            param = self._params[key, text] = f"tag={quote_plus(text)}"
        return param

    def _url(
        self,
        tags: Iterable[str],
        page: int = 1,
        *,
        sort: str | None = None,
        pairs: str | None = None,
    ) -> str:
        sort = self._sort if sort is None else sort
        parts = [
            self._pairs if pairs is None else pairs,
            *tags,
            f"sort={quote_plus(sort)}" if sort else "",
            self._tail,
            f"page={page}" if page != 1 else "",
        ]
        query = "&".join(p for p in parts if p)
        return f"{self._root}/?{query}" if query else f"{self._root}/"

    def page(self, page: int) -> str:
        """The same filters and sort, another page."""
        return self._url(self._tags.values(), page)

    def sorted_by(self, sort: str) -> str:
        """The same filters, the first page in this order."""
        return self._url(self._tags.values(), sort="" if sort == DEFAULT_SORT else sort)

    def with_tag(self, key: str, value: Any) -> str:
        """Filter on this tag too (replacing another value of the same key)."""
        others = (p for k, p in self._tags.items() if k != key)
        return self._url([*others, self._param(key, value)])

    def chip(self, key: str, value: Any) -> str:
        """The escaped HTML of a tag chip linking to :meth:`with_tag` (built once per tag)."""
        text = tag_value(value)
        html = self._chips.get((key, text))
        if html is None:
            html = self._chips[key, text] = (
                f'<a class="chip" href="{escape(self.with_tag(key, value))}" '
                f'title="{escape(key)}={escape(text)}: filter on this tag">'
                f"<b>{escape(key)}</b>={escape(text)}</a>"
            )
        return html

    def without_tag(self, key: str) -> str:
        """Drop the filter on ``key``."""
        return self._url(p for k, p in self._tags.items() if k != key)

    def without(self, name: str, text: str) -> str:
        """Drop one ``metric`` or ``param`` filter."""
        kept = [(n, t) for n, t in self._fixed if (n, t) != (name, text)]
        return self._url(self._tags.values(), pairs=urlencode(kept))


def tag_value(value: Any) -> str:
    """A tag's or param's value as shown: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _metric_cell(value: float | None) -> str:
    return "" if value is None else format_metric(value)


@dataclass(frozen=True, slots=True)
class HeaderCell:
    """One column header: its label, and the link that sorts by it (None: not sortable)."""

    label: str
    css: str = ""
    url: str | None = None
    sorted: str = ""
    """``ascending`` or ``descending`` when the page is in this column's order."""
    title: str = ""


def _sortable(label: str, key: str, links: Links, query: ListQuery, css: str = "") -> HeaderCell:
    current = query.effective_sort
    # The first click orders names A-Z and anything measured largest (or newest) first.
    first = key if key == "name" else f"-{key}"
    if current == key:
        return HeaderCell(label, css, links.sorted_by(f"-{key}"), "ascending", f"sorted by {key}")
    if current == f"-{key}":
        return HeaderCell(label, css, links.sorted_by(key), "descending", f"sorted by -{key}")
    return HeaderCell(label, css, links.sorted_by(first), "", f"sort by {first}")


def header_cells(columns: PageColumns, links: Links, query: ListQuery) -> list[HeaderCell]:
    """The table's headers, in the order :func:`row_html` writes the cells."""
    return [
        HeaderCell("", "pick"),
        _sortable("Name", "name", links, query),
        HeaderCell("Status"),
        HeaderCell("Project", "col-project"),
        _sortable("Started (UTC)", "start_time", links, query),
        _sortable("Duration", "duration", links, query, "num"),
        *(
            [
                _sortable("Requests", f"metrics.{REQUESTS_METRIC}", links, query, "num"),
                _sortable("p95 ms", f"metrics.{REQUEST_P95_METRIC}", links, query, "num"),
            ]
            if columns.requests
            else []
        ),
        *[
            _sortable(k, f"metrics.{k}", links, query, columns.css("metric", i))
            for i, k in enumerate(columns.metrics)
        ],
        *[
            HeaderCell(k, columns.css("param", i), title=f"param {k}")
            for i, k in enumerate(columns.params)
        ],
        HeaderCell("Tags", "tags"),
        HeaderCell("ID", "col-id"),
    ]


_STATUS_BADGE = {
    s: f'<span class="status status-{s.value.lower()}">{s.value}</span>' for s in ExperimentStatus
}
_STALE_BADGE = (
    '<span class="status status-stale" title="no heartbeat for three intervals: its process '
    'has probably died">STALE</span>'
)


def row_html(
    e: Experiment,
    links: Links,
    root: Markup,
    columns: PageColumns,
    short_id: str,
    now: datetime,
) -> Markup:
    """One ``<tr>`` of the list, every user string escaped; ``now`` judges staleness."""
    chips = " ".join([links.chip(k, v) for k, v in sorted(e.tags.items())])
    status = _STATUS_BADGE[e.status] + (f" {_STALE_BADGE}" if e.is_stale(now) else "")
    metric_cells = "".join(
        f'<td class="{columns.css("metric", i)}">{_metric_cell(e.metrics.get(k))}</td>'
        for i, k in enumerate(columns.metrics)
    )
    param_cells = "".join(
        f'<td class="{columns.css("param", i)}">'
        f"{escape(tag_value(e.params[k])) if k in e.params else ''}</td>"
        for i, k in enumerate(columns.params)
    )
    request_cells = (
        f'<td class="num">{_metric_cell(e.metrics.get(REQUESTS_METRIC))}</td>'
        f'<td class="num">{_metric_cell(e.metrics.get(REQUEST_P95_METRIC))}</td>'
        if columns.requests
        else ""
    )
    started = e.start_time.isoformat(" ", "seconds")[:19]
    experiment_id, name = escape(e.id), escape(e.name)
    href = f"{root}/experiments/{experiment_id}"
    return Markup(
        f'<tr><td class="pick"><input type="checkbox" name="id" value="{experiment_id}" '
        f'form="compare" aria-label="compare {name}"></td>'
        f'<td><a class="name" href="{href}">{name}</a></td>'
        f'<td class="nowrap">{status}</td><td class="col-project">{escape(e.project)}</td>'
        # the year and seconds are dropped on narrow windows (app.css)
        f'<td class="started"><span class="year">{started[:5]}</span>{started[5:16]}'
        f'<span class="seconds">{started[16:]}</span></td>'
        f'<td class="num nowrap">{format_duration(e.duration)}</td>'
        f'{request_cells}{metric_cells}{param_cells}<td class="tags">{chips}</td>'
        f'<td class="col-id"><a class="id" href="{href}" title="{experiment_id}">'
        f"{escape(short_id)}</a></td></tr>\n"
    )


def active_filters(query: ListQuery, links: Links) -> list[tuple[str, str, str]]:
    """(kind, text, url that removes it) for each metric and param filter in force."""
    return [("metric", t, links.without("metric", t)) for t in query.metrics] + [
        ("param", t, links.without("param", t)) for t in query.params
    ]
