"""``Service``: one service endpoint a use case serves, and ``TokenVerifier``, which
guards its calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Service", "TokenVerifier"]


@dataclass(frozen=True, slots=True)
class Service:
    """One service endpoint: the handler a use case's app calls, and how it is advertised."""

    id: str
    """The service id in the endpoint's path, e.g. ``/cds-services/{id}``."""
    hook: str
    """The workflow (CDS hook) the service answers."""
    handler: Callable[[Any], Awaitable[Any]]
    """Awaitable handler taking the validated request and returning the response model."""
    name: str
    """The handler's name, used in error messages."""
    title: str | None = None
    """A human-friendly title for discovery."""
    description: str = ""
    """What the service does, for discovery (required there, so it must not be empty)."""
    prefetch: Mapping[str, str] = field(default_factory=dict)
    """Prefetch templates advertised in discovery, by prefetch key."""
    usage_requirements: str | None = None
    """What the EHR must arrange before using the service (``usageRequirements``)."""
    feedback: Callable[[Any], Awaitable[Any]] | None = None
    """Awaitable handler taking the validated ``CDSFeedback``; None: feedback is accepted."""
    extension: Mapping[str, Any] | None = None
    """The service's ``extension`` object in discovery."""

    def __post_init__(self) -> None:
        for name in ("id", "hook", "description"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Service {name!r} must be a non-empty string (CDS Hooks discovery "
                    f"requires it), got {value!r} for handler {self.name!r}"
                )


class TokenVerifier(Protocol):
    """Checks the bearer token of a call: None when it is valid, else why not."""

    def verify(self, token: str, *, audience: str) -> str | None:
        """Check ``token`` for a call to the endpoint URL ``audience``."""
        ...
