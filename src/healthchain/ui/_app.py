"""The dashboard: a read-only Starlette app over one :class:`AsyncExperimentTracker`.

Pages are rendered on the server from Jinja2 templates (autoescaped); the two charts are
drawn in the browser by uPlot 1.6.32 (MIT; its licence is beside it), vendored under
``static/vendor`` from the npm package so the dashboard works offline with no build step.
Templates and static files are read once, in a worker thread, when the app starts;
handlers only await the tracker, so nothing blocks the event loop.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from urllib.parse import quote_plus, urlencode

import anyio
import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from healthchain._filters import build_filters, format_tag, parse_tag
from healthchain._formatting import format_duration, format_time
from healthchain.tracking import (
    DEFAULT_STORAGE_URI,
    AsyncExperimentTracker,
    Experiment,
    ExperimentStatus,
    InvalidFilterError,
    TrackerError,
    mask_uri,
)

from ._compare import compare_page
from ._experiment import experiment_live, experiment_page, format_latency, format_metric
from ._files import file_routes
from ._hosts import LOOPBACK_HOSTS, HostCheck, host_pattern
from ._pages import HEADERS, Asset, Dashboard, error_page, render
from ._views import duration_points

__all__ = ["LOOPBACK_HOSTS", "MAX_PAGE", "PAGE_SIZES", "create_app"]

PAGE_SIZES = (25, 50, 100, 200, 500)
"""Rows per page the list offers (the second is the default); the durations chart plots
the page's experiments, so a larger page shows a longer stretch of time."""
MAX_PAGE = 10**15
"""The highest page number served: its offset, at the largest page size, fits in SQL's
BIGINT with room to spare."""


def _load_files() -> tuple[dict[str, str], dict[str, Asset]]:
    """Read the packaged templates and static files (blocking: run in a worker thread)."""
    package = resources.files(__package__)
    templates = {
        item.name: item.read_text(encoding="utf-8")
        for item in package.joinpath("templates").iterdir()
        if item.name.endswith(".html")
    }
    assets: dict[str, Asset] = {}
    stack = [(package.joinpath("static"), "")]
    while stack:
        folder, prefix = stack.pop()
        for item in folder.iterdir():
            name = f"{prefix}{item.name}"
            if item.is_dir():
                stack.append((item, f"{name}/"))
                continue
            body = item.read_bytes()
            media_type = mimetypes.guess_type(item.name)[0] or "text/plain"
            if media_type.startswith("text/") or media_type.endswith("javascript"):
                media_type += "; charset=utf-8"
            assets[name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return templates, assets


def _environment(sources: dict[str, str], assets: Mapping[str, Asset]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        statuses=[s.value for s in ExperimentStatus],
        asset_version={name: a.version for name, a in assets.items()},
    )
    env.filters.update(
        duration=format_duration,
        time=format_time,
        tag_value=_tag_value,
        metric=format_metric,
        latency=format_latency,
        pretty_json=lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True),
    )
    return env


def _tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def create_app(
    storage_uri: str = DEFAULT_STORAGE_URI,
    *,
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """The dashboard over ``storage_uri``; read-only (every route is a GET).

    A bad URI fails here; the database is opened, for reading only, when the app starts
    (its lifespan). Requests are served only when their Host header is ``localhost``, a
    loopback address or one of ``allowed_hosts`` (names or IP addresses, ``*.domain``
    for its subdomains; a bad one is a ``ValueError``); any other is answered 400, so a
    page elsewhere cannot read the dashboard through a DNS name rebound to its address.
    """
    if isinstance(allowed_hosts, str) or allowed_hosts is None:
        raise TypeError(
            f"allowed_hosts must be a collection of host names, got {allowed_hosts!r}; "
            "the Host check cannot be switched off"
        )
    host_check = Middleware(HostCheck, allowed=[host_pattern(name) for name in allowed_hosts])
    tracker = AsyncExperimentTracker(storage_uri, read_only=True)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        sources, assets = await anyio.to_thread.run_sync(_load_files)
        async with tracker:
            shown = mask_uri(storage_uri)
            dashboard = Dashboard(tracker, _environment(sources, assets), assets, shown)
            yield {"dashboard": dashboard}

    return Starlette(
        routes=[
            Route("/", _list_page, methods=["GET"], name="experiments"),
            Route("/experiments/{experiment_id}", experiment_page, methods=["GET"]),
            Route("/experiments/{experiment_id}/live", experiment_live, methods=["GET"]),
            Route("/compare", compare_page, methods=["GET"]),
            Route("/static/{name:path}", _static, methods=["GET"]),
            *file_routes(render, HEADERS),
        ],
        middleware=[host_check],
        exception_handlers={TrackerError: _tracker_error},
        lifespan=lifespan,
    )


async def _tracker_error(request: Request, exc: Exception) -> Response:
    # The database went away or is locked mid-run: say so rather than a bare 500.
    return error_page(request, "The experiments database failed", str(exc), 503)


def _int_param(request: Request, name: str, default: int, largest: int) -> int:
    text = request.query_params.get(name) or str(default)
    shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text):,} characters)"
    try:
        value = int(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= largest:
        raise InvalidFilterError(
            f"{name} must be a whole number from 1 to {largest:,}, got {shown}"
        )
    return value


async def _list_page(request: Request) -> Response:
    dashboard: Dashboard = request.state.dashboard
    params = request.query_params
    project = params.get("project", "").strip()
    status = params.get("status", "").strip()
    tag_texts = [t.strip() for t in params.getlist("tag") if t.strip()]
    form = {"project": project, "status": status, "tags": tag_texts}
    try:
        page = _int_param(request, "page", 1, MAX_PAGE)
        per_page = _int_param(request, "per_page", PAGE_SIZES[1], PAGE_SIZES[-1])
        if per_page not in PAGE_SIZES:
            raise InvalidFilterError(f"per_page must be one of {PAGE_SIZES}, got {per_page}")
        filters = build_filters(
            project=project, statuses=[status] if status else (), tags=tag_texts
        )
        tags = [parse_tag(t) for t in tag_texts]
        rows = await dashboard.tracker.list_experiments(
            filters, limit=per_page + 1, offset=(page - 1) * per_page
        )
    except InvalidFilterError as exc:
        return render(request, "list.html", {**_empty_list(form), "error": str(exc)}, 400)

    root = request.scope.get("root_path", "")
    links = _Links(root, project, status, per_page, tags)
    shown = rows[:per_page]
    return render(
        request,
        "list.html",
        {
            "form": form,
            "error": None,
            "rows": [_row(e, links, escape(root)) for e in shown],
            "page": page,
            "per_page": per_page,
            "page_sizes": PAGE_SIZES,
            "first_index": (page - 1) * per_page + 1,
            "prev_url": links.page(page - 1) if page > 1 else None,
            "next_url": links.page(page + 1) if len(rows) > per_page else None,
            "active_tags": [(k, v, links.without_tag(k), format_tag(k, v)) for k, v in tags],
            "chart": duration_points(shown),
        },
    )


class _Links:
    """URLs of the list page that keep the current filters: pages, adding or removing a tag.

    The query string is assembled from pieces encoded once: a page of 50 rows links every
    one of its tags, and this is the hot path of rendering it.
    """

    __slots__ = ("_chips", "_head", "_params", "_root", "_tags", "_tail")

    def __init__(
        self,
        root: str,
        project: str,
        status: str,
        per_page: int,
        tags: Sequence[tuple[str, Any]],
    ) -> None:
        self._root = root
        self._head = urlencode([(k, v) for k, v in (("project", project), ("status", status)) if v])
        self._tail = "" if per_page == PAGE_SIZES[1] else f"per_page={per_page}"
        self._params: dict[tuple[str, str], str] = {}
        self._chips: dict[tuple[str, str], str] = {}
        self._tags = {key: self._param(key, value) for key, value in tags}

    def _param(self, key: str, value: Any) -> str:
        # Rows share most tag values (environment, model): quote each pair once.
        text = format_tag(key, value)
        param = self._params.get((key, text))
        if param is None:
            param = self._params[key, text] = f"tag={quote_plus(text)}"
        return param

    def _url(self, tags: Iterable[str], page: int = 1) -> str:
        parts = [self._head, *tags, self._tail, f"page={page}" if page != 1 else ""]
        query = "&".join(p for p in parts if p)
        return f"{self._root}/?{query}" if query else f"{self._root}/"

    def page(self, page: int) -> str:
        """The same filters, another page."""
        return self._url(self._tags.values(), page)

    def with_tag(self, key: str, value: Any) -> str:
        """Filter on this tag too (replacing another value of the same key)."""
        others = (p for k, p in self._tags.items() if k != key)
        return self._url([*others, self._param(key, value)])

    def chip(self, key: str, value: Any) -> str:
        """The escaped HTML of a tag chip linking to :meth:`with_tag` (built once per tag)."""
        text = _tag_value(value)
        html = self._chips.get((key, text))
        if html is None:
            html = self._chips[key, text] = (
                f'<a class="chip" href="{escape(self.with_tag(key, value))}" '
                f'title="filter on this tag"><b>{escape(key)}</b>={escape(text)}</a>'
            )
        return html

    def without_tag(self, key: str) -> str:
        """Drop the filter on ``key``."""
        return self._url(p for k, p in self._tags.items() if k != key)


_STATUS_BADGE = {
    s: f'<span class="status status-{s.value.lower()}">{s.value}</span>' for s in ExperimentStatus
}


def _row(e: Experiment, links: _Links, root: Markup) -> Markup:
    """One ``<tr>`` of the list, every user string escaped.

    Built here rather than in the template: this is the page's hot path, and Jinja's
    per-substitution escaping of 50 rows was most of the page's server time.
    """
    chips = " ".join([links.chip(k, v) for k, v in sorted(e.tags.items())])
    return Markup(
        f'<tr><td><a class="name" href="{root}/experiments/{escape(e.id)}">'
        f"{escape(e.name)}</a></td><td>{_STATUS_BADGE[e.status]}</td><td>{escape(e.project)}</td>"
        f'<td class="nowrap">{e.start_time.isoformat(" ", "seconds")[:19]}</td>'
        f'<td class="num nowrap">{format_duration(e.duration)}</td>'
        f'<td class="tags">{chips}</td><td class="id">{escape(e.id)}</td></tr>\n'
    )


def _empty_list(form: dict[str, Any]) -> dict[str, Any]:
    return {
        "form": form,
        "rows": [],
        "page": 1,
        "per_page": PAGE_SIZES[1],
        "page_sizes": PAGE_SIZES,
        "first_index": 1,
        "prev_url": None,
        "next_url": None,
        "active_tags": [],
        "chart": duration_points([]),
    }


async def _static(request: Request) -> Response:
    dashboard: Dashboard = request.state.dashboard
    asset = dashboard.assets.get(request.path_params["name"])
    if asset is None:
        return PlainTextResponse("not found", status_code=404, headers=HEADERS)
    versioned = request.query_params.get("v") == asset.version
    cache = "public, max-age=31536000, immutable" if versioned else "no-cache"
    return Response(
        asset.body,
        media_type=asset.media_type,
        headers={**HEADERS, "Cache-Control": cache, "ETag": f'"{asset.version}"'},
    )
