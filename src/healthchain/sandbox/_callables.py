"""Handlers and ``@ehr`` methods as awaitables, whether written ``def`` or ``async def``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from healthchain._callables import is_async_callable

__all__ = ["as_async", "is_async_callable"]


def as_async(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``func`` as an awaitable callable; a sync one runs in a worker thread.

    A worker thread is abandoned on cancellation, so an interrupt never waits for a
    blocked handler.
    """
    if is_async_callable(func):
        return func

    async def call_in_thread(*args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=True)

    return call_in_thread
