"""What every page handler shares: the app's state, the response headers, rendering.

Kept apart from ``_app`` so the page modules (``_experiment``, ``_compare``) and the app
that routes to them depend one way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from healthchain.tracking import AsyncExperimentTracker

__all__ = [
    "HEADERS",
    "READ_CONCURRENCY",
    "SQLITE_READ_CONCURRENCY",
    "Asset",
    "Dashboard",
    "error_page",
    "gather",
    "json_response",
    "render",
]

T = TypeVar("T")

READ_CONCURRENCY = 4
"""Tracker reads the dashboard runs at once on PostgreSQL: fewer than the SQLAlchemy
pool's 5 connections, so a page of ten runs reuses pooled connections instead of opening
overflow ones, while their network waits overlap."""

SQLITE_READ_CONCURRENCY = 1
"""The same on SQLite, where a read is CPU work on a connection's own thread: threads
decoding rows at once only contend for the GIL. The compare page of 10 runs x 10,000
points took 115 ms server time one read at a time, 185 ms two at a time and 176 ms four
at a time (bench/bench_compare.py, quiet machine)."""

HEADERS = {
    # Scripts and styles come only from the dashboard itself: an injected <script> would
    # not run even if escaping ever failed.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """A static file, read once at start-up."""

    body: bytes
    media_type: str
    version: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The app's state: the tracker, the templates, the static files, the storage shown."""

    tracker: AsyncExperimentTracker
    templates: jinja2.Environment
    assets: Mapping[str, Asset]
    storage: str
    reads: anyio.CapacityLimiter
    """Bounds the reads of every page at once to :data:`READ_CONCURRENCY`
    (:data:`SQLITE_READ_CONCURRENCY` on SQLite)."""


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """``template`` rendered with ``context``, under the dashboard's headers."""
    dashboard: Dashboard = request.state.dashboard
    html = dashboard.templates.get_template(template).render(
        root=request.scope.get("root_path", ""), storage=dashboard.storage, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def error_page(request: Request, title: str, message: str, status_code: int) -> HTMLResponse:
    """The error page: ``title`` over ``message`` (which names the bad value)."""
    return render(request, "error.html", {"title": title, "message": message}, status_code)


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    """``content`` as JSON, never cached (it is polled for changes)."""
    headers = {**HEADERS, "Cache-Control": "no-store"}
    return JSONResponse(content, status_code=status_code, headers=headers)


async def gather(
    calls: Sequence[Callable[[], Awaitable[T]]], limiter: anyio.CapacityLimiter
) -> list[T]:
    """Each call's result, in order, the calls awaited concurrently, at most ``limiter``'s
    total at a time (a page's reads of several runs overlap in the tracker's threads).

    If calls fail, the error of the first in ``calls`` order is raised as itself (not in
    an exception group), so a page names the same bad id every time.
    """
    results: list[Any] = [None] * len(calls)
    errors: list[Exception | None] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            async with limiter:
                results[i] = await calls[i]()
        except Exception as exc:  # raised below, in order, once every call is done
            errors[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
    for error in errors:
        if error is not None:
            raise error
    return results
