"""``ServiceLog``: what the service saw during a run, recorded on the sandbox's side."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

from ._client import Exchange

__all__ = ["ServiceLog", "counting_feedback", "recording_errors", "with_handler_error"]


@dataclass(slots=True)
class ServiceLog:
    """What the service saw, recorded on the sandbox's side."""

    errors: dict[str, str] = field(default_factory=dict)
    """Why the handler failed, by hookInstance: the 500 body does not say, the run does."""
    feedback: Counter[str] = field(default_factory=Counter)
    """Feedback received, counted by outcome."""


def recording_errors(
    handler: Callable[[Any], Awaitable[Any]], name: str, log: ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    """``handler``, recording in ``log`` why it failed for each request."""

    async def call(request: Any) -> Any:
        try:
            return await handler(request)
        except HTTPException:
            raise  # an answer the handler chose, such as 412: the body carries it
        except Exception as exc:
            key = str(getattr(request, "hookInstance", ""))
            log.errors[key] = f"handler {name!r} raised {type(exc).__name__}: {exc}"
            raise

    return call


def counting_feedback(
    handler: Callable[[Any], Awaitable[Any]] | None, log: ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    """``handler`` (or none), counting in ``log`` the feedback outcomes it receives."""

    async def take(feedback: Any) -> Any:
        log.feedback.update(item.outcome for item in feedback.feedback)
        return await handler(feedback) if handler is not None else None

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
