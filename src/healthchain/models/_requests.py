"""The CDS Hooks 2.0 request an EHR sends when a hook fires.

``context`` is validated by the model of the request's ``hook`` (see ``CONTEXT_MODELS``);
a hook this project does not know keeps a permissive :class:`HookContext`. ``prefetch``
values are real ``fhir.resources`` (R4B) resources, or ``None`` where the EHR could not
fetch one.
"""

from __future__ import annotations

from typing import Any, Literal, Self
from uuid import UUID

from pydantic import (
    Field,
    SerializeAsAny,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from ._fhir import FhirResource
from ._hooks import CONTEXT_MODELS, HookContext
from ._types import Url
from ._wire import WireModel

__all__ = ["CDSRequest", "FhirAuthorization"]


class FhirAuthorization(WireModel):
    """An OAuth 2.0 bearer token the service may use to call the EHR's FHIR server."""

    access_token: str = Field(min_length=1)
    """The bearer token."""
    token_type: Literal["Bearer"]
    """Always ``Bearer``."""
    expires_in: int = Field(gt=0)
    """Lifetime of the token, in seconds."""
    scope: str = Field(min_length=1)
    """The SMART scopes the token grants."""
    subject: str = Field(min_length=1)
    """The OAuth client id of the CDS service."""
    patient: str | None = None
    """The patient the token is restricted to, if any."""


class CDSRequest(WireModel):
    """A hook call: which hook fired, its context, and data the EHR prefetched."""

    hook: str = Field(min_length=1)
    """The hook that fired, e.g. ``"encounter-discharge"``."""
    hookInstance: UUID
    """A UUID for this hook call."""
    fhirServer: Url | None = None
    """Base URL of the EHR's FHIR server."""
    fhirAuthorization: FhirAuthorization | None = None
    """Token for ``fhirServer``; requires ``fhirServer``."""
    context: SerializeAsAny[HookContext]
    """The hook's context, validated by the hook's own context model."""
    prefetch: dict[str, FhirResource | None] | None = None
    """Prefetched FHIR resources by prefetch key; ``None`` values were not fetched."""
    extension: dict[str, Any] | None = None
    """Vendor extensions, passed through unchanged."""

    @field_validator("context", mode="wrap")
    @classmethod
    def _validate_context_for_hook(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> HookContext:
        model = CONTEXT_MODELS.get(info.data.get("hook", ""))
        if model is None:
            context: HookContext = handler(value)
            return context
        if isinstance(value, HookContext) and not isinstance(value, model):
            value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return model.model_validate(value)

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> Self:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("'fhirAuthorization' is given but 'fhirServer' is missing")
        return self
