"""CDS Hooks 2.0 feedback: what the EHR tells a service about the cards it returned.

``POST {baseUrl}/cds-services/{id}/feedback`` carries a :class:`CDSFeedback`: one
:class:`CardFeedback` per card the user acted on, ``accepted`` (with the suggestions
taken) or ``overridden`` (with the reason the user picked, if any).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from ._responses import Coding
from ._wire import WireModel

__all__ = ["AcceptedSuggestion", "CardFeedback", "CDSFeedback", "OverrideReason"]


class AcceptedSuggestion(WireModel):
    """A suggestion the user accepted, by the ``uuid`` the service gave it."""

    id: str = Field(min_length=1)
    """The suggestion's ``uuid``."""


class OverrideReason(WireModel):
    """Why the user dismissed a card: one of the card's ``overrideReasons`` and/or a comment."""

    reason: Coding | None = None
    """The reason the user picked from the card's ``overrideReasons``."""
    userComment: str | None = None
    """What the user typed."""


class CardFeedback(WireModel):
    """The outcome of one card."""

    card: str = Field(min_length=1)
    """The ``uuid`` of the card."""
    outcome: Literal["accepted", "overridden"]
    """``accepted`` or ``overridden``."""
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    """The suggestions taken; required when the outcome is ``accepted``."""
    overrideReason: OverrideReason | None = None
    """Why the card was dismissed (``overridden`` only)."""
    outcomeTimestamp: AwareDatetime
    """When the user acted, with a time zone (RFC 3339)."""

    @model_validator(mode="after")
    def _fields_fit_outcome(self) -> Self:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an 'accepted' outcome needs 'acceptedSuggestions'")
        return self


class CDSFeedback(WireModel):
    """The body of a feedback call: the outcome of each card the user acted on."""

    feedback: list[CardFeedback] = Field(min_length=1)
    """One entry per card."""
