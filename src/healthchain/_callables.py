"""Telling ``async def`` callables from ``def`` ones, the way Starlette does.

Shared by the pipeline (components) and the sandbox (handlers and ``@ehr`` methods).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeGuard

__all__ = ["is_async_callable", "member"]


def is_async_callable(obj: object) -> TypeGuard[Callable[..., Coroutine[Any, Any, Any]]]:
    """True for coroutine functions, also behind ``functools.partial`` or ``__call__``."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(type(obj).__call__)
    )


def member(obj: object, name: str) -> Any:
    """``getattr(obj, name)``, except that a ``functools.partial`` set on the class is
    returned as it is, unbound: Python 3.13 warns (FutureWarning) when such a partial is
    read through an instance, and 3.14 binds it like a method."""
    raw = inspect.getattr_static(obj, name)
    return raw if isinstance(raw, functools.partial) else getattr(obj, name)
