"""The dashboard app with its lifespan run, as a server would run it, behind an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.types import Receive, Scope, Send

from healthchain.ui import create_app

__all__ = ["dashboard_client"]


@asynccontextmanager
async def dashboard_client(storage_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``create_app(storage_uri)`` served in-process at http://testserver."""
    app = create_app(storage_uri, allowed_hosts=["testserver"])
    async with app.router.lifespan_context(app) as state:

        async def served(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
