"""Telling ``async def`` handlers from ``def`` ones, the way Starlette does."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

import anyio.to_thread

__all__ = ["as_async", "is_async_callable"]


def is_async_callable(obj: object) -> TypeGuard[Callable[..., Awaitable[Any]]]:
    """True for coroutine functions, also behind ``functools.partial`` or ``__call__``."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(type(obj).__call__)
    )


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
