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
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import anyio
import jinja2
from markupsafe import escape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from healthchain._filters import build_filters, format_tag
from healthchain._formatting import SHORT_ID_LENGTH, format_duration, format_time
from healthchain.tracking import (
    DEFAULT_STORAGE_URI,
    AsyncExperimentTracker,
    ExperimentStatus,
    InvalidFilterError,
    InvalidInputError,
    TrackerError,
    mask_uri,
)
from healthchain.tracking._config import resolve_storage_uri

from ._compare import compare_page
from ._experiment import experiment_live, experiment_page, format_latency, format_metric
from ._files import file_routes
from ._hosts import LOOPBACK_HOSTS, HostCheck, host_pattern
from ._list import (
    Links,
    ListQuery,
    PageColumns,
    active_filters,
    choose_columns,
    header_cells,
    read_list_query,
    row_html,
    tag_value,
)
from ._pages import (
    HEADERS,
    READ_CONCURRENCY,
    SQLITE_READ_CONCURRENCY,
    Asset,
    Dashboard,
    error_page,
    render,
)
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
        tag_value=tag_value,
        metric=format_metric,
        latency=format_latency,
        pretty_json=lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True),
    )
    return env


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
    # The tracker has just looked for the driver; importing it here would block the
    # loop of an app built in a coroutine (the tracker imports it in a worker thread).
    sqlite = resolve_storage_uri(storage_uri, import_driver=False).is_sqlite

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        sources, assets = await anyio.to_thread.run_sync(_load_files)
        async with tracker:
            shown = mask_uri(storage_uri)
            dashboard = Dashboard(
                tracker,
                _environment(sources, assets),
                assets,
                shown,
                anyio.CapacityLimiter(SQLITE_READ_CONCURRENCY if sqlite else READ_CONCURRENCY),
            )
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
    tracker = dashboard.tracker
    query = ListQuery()
    try:
        query = read_list_query(request.query_params)
        page = _int_param(request, "page", 1, MAX_PAGE)
        per_page = _int_param(request, "per_page", PAGE_SIZES[1], PAGE_SIZES[-1])
        if per_page not in PAGE_SIZES:
            raise InvalidFilterError(f"per_page must be one of {PAGE_SIZES}, got {per_page}")
        filters = build_filters(
            project=query.project,
            statuses=[query.status] if query.status else (),
            tags=query.tags,
            metrics=query.metrics,
            params=query.params,
        )
        rows = await tracker.list_experiments(
            filters, limit=per_page + 1, offset=(page - 1) * per_page, order_by=query.order_by
        )
    except InvalidInputError as exc:  # a bad filter, or a metric key order_by refuses
        return render(request, "list.html", _empty_list(request, query, str(exc)), 400)

    shown = rows[:per_page]
    short_ids = await tracker.abbreviate_ids([e.id for e in shown], SHORT_ID_LENGTH)
    root = request.scope.get("root_path", "")
    links = Links(root, query, per_page, PAGE_SIZES[1])
    columns = choose_columns(shown, query)
    now = datetime.now(UTC)
    escaped_root = escape(root)
    return render(
        request,
        "list.html",
        {
            **_list_context(query, links, columns),
            "rows": [
                row_html(e, links, escaped_root, columns, short_ids[e.id], now) for e in shown
            ],
            "page": page,
            "per_page": per_page,
            "first_index": (page - 1) * per_page + 1,
            "prev_url": links.page(page - 1) if page > 1 else None,
            "next_url": links.page(page + 1) if len(rows) > per_page else None,
            "chart": duration_points(shown),
        },
    )


def _list_context(query: ListQuery, links: Links, columns: PageColumns) -> dict[str, Any]:
    return {
        "form": query,
        "error": None,
        "page_sizes": PAGE_SIZES,
        "headers": header_cells(columns, links, query),
        "active_tags": [
            (k, v, links.without_tag(k), format_tag(k, v)) for k, v in query.parsed_tags
        ],
        "active_filters": active_filters(query, links),
    }


def _empty_list(request: Request, query: ListQuery, error: str) -> dict[str, Any]:
    links = Links(request.scope.get("root_path", ""), query, PAGE_SIZES[1], PAGE_SIZES[1])
    return {
        **_list_context(query, links, choose_columns([], query)),
        "error": error,
        "rows": [],
        "page": 1,
        "per_page": PAGE_SIZES[1],
        "first_index": 1,
        "prev_url": None,
        "next_url": None,
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
