"""What an EHR client sends: a hook context plus a FHIR Bundle, before it becomes a request.

Build a :class:`CDSRequest` from it with :meth:`CdsFhirData.to_request`::

    data = CdsFhirData(context={"userId": "Practitioner/1", ...}, prefetch=bundle)
    request = data.to_request("encounter-discharge")
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True)

The Bundle goes into the request's ``prefetch`` under ``prefetch_key`` (``"bundle"`` by
default) and the context is validated by the hook's context model at that point.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict

from ._fhir import FhirBundle
from ._requests import CDSRequest

__all__ = ["DEFAULT_PREFETCH_KEY", "CdsFhirData"]

DEFAULT_PREFETCH_KEY = "bundle"
"""The prefetch key :meth:`CdsFhirData.to_request` puts the Bundle under."""


class CdsFhirData(BaseModel):
    """A hook context and the FHIR Bundle the EHR would prefetch for it."""

    model_config = ConfigDict(extra="forbid")

    context: dict[str, Any]
    """The hook context as JSON, e.g. ``{"userId": ..., "patientId": ...}``."""
    prefetch: FhirBundle
    """The patient's data as a FHIR R4B Bundle."""

    def to_request(
        self,
        hook: str,
        *,
        hook_instance: UUID | str | None = None,
        fhir_server: str | None = None,
        prefetch_key: str = DEFAULT_PREFETCH_KEY,
    ) -> CDSRequest:
        """Build the :class:`CDSRequest` for ``hook``; a new UUID if ``hook_instance`` is None."""
        return CDSRequest.model_validate(
            {
                "hook": hook,
                "hookInstance": hook_instance if hook_instance is not None else uuid4(),
                "fhirServer": fhir_server,
                "context": self.context,
                "prefetch": {prefetch_key: self.prefetch},
            }
        )
