"""``ServiceLog``: what the service saw during a run, recorded on the sandbox's side."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

from ._client import Exchange

__all__ = [
    "Raised",
    "ServiceLog",
    "counting_feedback",
    "recording_errors",
    "with_handler_error",
]

logger = logging.getLogger("healthchain.sandbox")

_Kind = tuple[str, type[BaseException], tuple[tuple[str, int], ...]]
"""What makes two errors the same: where they were caught, their type, and the file and
line of every frame they passed through (not their message, which often names the
request)."""


@dataclass(slots=True)
class Raised:
    """One distinct error a handler raised during a run: its first message and a count."""

    where: str
    """The handler that raised it (``handler 'svc'``)."""
    text: str
    """The first one's ``Type: message``."""
    origin: str
    """``file.py:12``, the line that raised it."""
    count: int = 1


@dataclass(slots=True)
class ServiceLog:
    """What the service saw, recorded on the sandbox's side."""

    errors: dict[str, str] = field(default_factory=dict)
    """Why the handler failed, by hookInstance: the 500 body does not say, the run does."""
    feedback: Counter[str] = field(default_factory=Counter)
    """Feedback received, counted by outcome."""
    raised: dict[_Kind, Raised] = field(default_factory=dict)
    """The distinct errors the handlers raised, first seen first; each one's traceback
    is logged once, when first seen."""

    def note(self, exc: Exception, where: str) -> None:
        """Count ``exc``; log its traceback if it is the first error of its kind."""
        frames = tuple(
            (f.f_code.co_filename, line) for f, line in traceback.walk_tb(exc.__traceback__)
        )
        kind = (where, type(exc), frames)
        seen = self.raised.get(kind)
        if seen is not None:
            seen.count += 1
            return
        origin = f"{os.path.basename(frames[-1][0])}:{frames[-1][1]}" if frames else "?"
        self.raised[kind] = Raised(where, f"{type(exc).__name__}: {exc}", origin)
        logger.error(
            "%s raised %s (the first error of its kind: others like it are counted in "
            "the run's summary, not printed)",
            where,
            type(exc).__name__,
            exc_info=exc,
        )


def recording_errors(
    handler: Callable[[Any], Awaitable[Any]], name: str, log: ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    """``handler``, recording in ``log`` why it failed for each request.

    Its error becomes a 500 answer here, counted in ``log`` with one traceback per
    distinct error, rather than one traceback per failed request from the service.
    """
    where = f"handler {name!r}"

    async def call(request: Any) -> Any:
        try:
            return await handler(request)
        except HTTPException:
            raise  # an answer the handler chose, such as 412: the body carries it
        except Exception as exc:
            key = str(getattr(request, "hookInstance", ""))
            log.errors[key] = f"{where} raised {type(exc).__name__}: {exc}"
            log.note(exc, where)
            raise _failed(where) from exc

    return call


def _failed(where: str) -> HTTPException:
    return HTTPException(500, f"{where} failed; the sandbox's log has the details")


def counting_feedback(
    handler: Callable[[Any], Awaitable[Any]] | None, log: ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    """``handler`` (or none), counting in ``log`` the feedback outcomes it receives."""

    async def take(feedback: Any) -> Any:
        log.feedback.update(item.outcome for item in feedback.feedback)
        if handler is None:
            return None
        try:
            return await handler(feedback)
        except HTTPException:
            raise
        except Exception as exc:
            log.note(exc, "feedback handler")
            raise _failed("feedback handler") from exc

    return take


def with_handler_error(exchange: Exchange, log: ServiceLog) -> Exchange:
    """A 500's error names the handler's exception, recorded when the service caught it."""
    if exchange.outcome.status_code != 500 or not log.errors or exchange.request_body is None:
        return exchange
    try:
        key = str(json.loads(exchange.request_body).get("hookInstance"))
    except (ValueError, AttributeError):
        return exchange
    message = log.errors.pop(key, None)
    if message is None:
        return exchange
    outcome = dataclasses.replace(exchange.outcome, error=f"HTTP 500: {message}")
    return dataclasses.replace(exchange, outcome=outcome)
