"""The dashboard served in-process for a benchmark, timing each request's ASGI call.

*Server time* is the app's ASGI call, from receiving the request to sending the last
body byte; :func:`served_dashboard` records it per request, beside an httpx client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from _harness import clock

__all__ = ["served_dashboard"]


@asynccontextmanager
async def served_dashboard(
    storage_uri: str,
) -> AsyncIterator[tuple[Any, Any, list[float]]]:
    """``(client, tracker, server_times)`` of ``create_app(storage_uri)`` with its lifespan
    run; each request appends its server time (seconds) to ``server_times``."""
    import httpx

    from healthchain.ui import create_app

    app = create_app(storage_uri)  # served as users serve it: the Host check on
    server_times: list[float] = []
    async with app.router.lifespan_context(app) as state:
        assert state is not None  # Starlette's type allows none; create_app's yields one

        async def served(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            t0 = clock()
            await app(scope, receive, send)
            server_times.append(clock() - t0)

        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client, state["dashboard"].tracker, server_times
