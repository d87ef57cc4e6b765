"""Telling ``async def`` callables from ``def`` ones, the way Starlette does.

Shared by the pipeline (components) and the sandbox (handlers and ``@ehr`` methods).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeGuard

__all__ = ["is_async_callable"]


def is_async_callable(obj: object) -> TypeGuard[Callable[..., Coroutine[Any, Any, Any]]]:
    """True for coroutine functions, also behind ``functools.partial`` or ``__call__``."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(type(obj).__call__)
    )
