"""``collapse_exception_groups``: a task group's lone error, raised as itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["collapse_exception_groups"]


@contextlib.contextmanager
def collapse_exception_groups() -> Iterator[None]:
    """Re-raise a task group's lone exception as itself, so callers see the real error."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        inner = group.exceptions[0]
        if isinstance(inner, BaseExceptionGroup):
            raise
        raise inner from inner.__cause__
