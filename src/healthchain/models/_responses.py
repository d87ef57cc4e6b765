"""The CDS Hooks 2.0 response: cards with their source, suggestions, actions and links.

Serialise for the wire with ``model_dump(mode="json", by_alias=True, exclude_none=True)``:
optional elements that are None or empty are left out, as CDS Hooks 2.0 requires ("JSON
elements SHALL NOT be null or empty"). Read with ``model_validate``. Every object may carry
an ``extension``, and keys a later version of the spec adds are tolerated and kept; a
missing required field or a wrong type is still an error naming the field.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from ._fhir import FhirResource
from ._types import Url
from ._wire import WireModel

__all__ = [
    "Action",
    "CDSResponse",
    "Card",
    "Coding",
    "Link",
    "Source",
    "Suggestion",
]


class _Model(WireModel):
    extension: dict[str, Any] | None = None
    """Vendor extensions, passed through unchanged."""


class Coding(_Model):
    """A code from a code system: a card's topic or an override reason."""

    code: str = Field(min_length=1)
    """The code within the system."""
    system: str = Field(min_length=1)
    """The code system's URI (required)."""
    display: str | None = None
    """Text shown to the user; required for a card's override reasons."""


class Source(_Model):
    """Where a card's content comes from, shown to the user."""

    label: str = Field(min_length=1)
    """A short, human-readable name of the source."""
    url: Url | None = None
    """A page about the source."""
    icon: Url | None = None
    """An absolute URL of a 100x100 PNG icon."""
    topic: Coding | None = None
    """A topic that describes the card's content."""


class Action(_Model):
    """One change to FHIR data: create, update or delete a resource."""

    type: Literal["create", "update", "delete"]
    """What to do with the resource."""
    description: str = Field(min_length=1)
    """Human-readable description of the action."""
    resource: FhirResource | None = None
    """The resource to create, or the whole updated resource (required for those types)."""
    resourceId: str | None = Field(default=None, min_length=1)
    """A relative reference to the resource to delete, e.g. ``"MedicationRequest/1"``."""

    @model_validator(mode="after")
    def _resource_fits_type(self) -> Self:
        if self.type in ("create", "update") and self.resource is None:
            raise ValueError(f"an action of type {self.type!r} needs a 'resource'")
        if self.type == "delete" and not self.resourceId:
            raise ValueError("an action of type 'delete' needs a 'resourceId'")
        return self


class Suggestion(_Model):
    """A set of actions the user can accept with one click."""

    label: str = Field(min_length=1)
    """Human-readable label of the suggestion."""
    uuid: str | None = None
    """Identifier used to report back that the suggestion was accepted."""
    isRecommended: bool | None = None
    """Whether this is the suggestion the service recommends."""
    actions: list[Action] | None = None
    """The actions to take if the suggestion is accepted."""


class Link(_Model):
    """A link to a web page or a SMART app launch."""

    label: str = Field(min_length=1)
    """Human-readable label shown for the link."""
    url: Url
    """The page's URL, or the SMART app's launch URL."""
    type: Literal["absolute", "smart"]
    """``absolute`` for a web page, ``smart`` for a SMART app launch."""
    appContext: str | None = None
    """Data passed to a SMART app on launch (``smart`` links only)."""
    autolaunchable: bool | None = None
    """Whether the client may launch the app without the user's click."""

    @model_validator(mode="after")
    def _app_context_is_for_smart(self) -> Self:
        if self.appContext is not None and self.type != "smart":
            raise ValueError(f"'appContext' is only allowed on 'smart' links, not {self.type!r}")
        return self


class Card(_Model):
    """One piece of decision support shown to the user."""

    summary: str = Field(min_length=1, max_length=139)
    """A one-sentence summary, shorter than 140 characters."""
    indicator: Literal["info", "warning", "critical"]
    """Urgency: ``info``, ``warning`` or ``critical``."""
    source: Source
    """Where the card's content comes from."""
    uuid: str | None = None
    """Identifier of the card, for feedback."""
    detail: str | None = None
    """Optional detail in GitHub-flavoured Markdown."""
    suggestions: list[Suggestion] | None = None
    """Suggested sets of actions."""
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    """How many suggestions may be accepted; required when there are suggestions."""
    overrideReasons: list[Coding] | None = None
    """Reasons the user may give for dismissing the card."""
    links: list[Link] | None = None
    """Links to web pages or SMART apps."""

    @model_validator(mode="after")
    def _suggestions_need_selection_behavior(self) -> Self:
        if self.suggestions and self.selectionBehavior is None:
            raise ValueError("a card with 'suggestions' needs a 'selectionBehavior'")
        for index, reason in enumerate(self.overrideReasons or ()):
            if not reason.display:
                raise ValueError(
                    f"overrideReasons[{index}] (code {reason.code!r}) needs a 'display': "
                    "the EHR shows it to the user who dismisses the card"
                )
        return self


class CDSResponse(_Model):
    """A CDS service's answer to a hook call: cards, and actions for the EHR to apply."""

    cards: list[Card]
    """The cards to show; an empty list when there is nothing to say."""
    systemActions: list[Action] | None = None
    """Actions the EHR applies without showing them to the user."""
