"""What an EHR client sends: a hook context plus a FHIR Bundle, before it becomes a request.

Build a :class:`CDSRequest` from it with :meth:`CdsFhirData.to_request`::

    data = CdsFhirData(context={"userId": "Practitioner/1", ...}, prefetch=bundle)
    request = data.to_request("encounter-discharge")
    body = request.model_dump(mode="json", by_alias=True, exclude_none=True)

With ``prefetch_templates`` (what a service advertises in discovery), each key is filled
as the EHR's FHIR server would answer its template from the Bundle: a read gives the
resource, a search a ``searchset`` Bundle. Without them the whole Bundle goes under
``prefetch_key`` (``"bundle"`` by default). The context is validated by the hook's
context model at that point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict

from ._fhir import FhirBundle
from ._prefetch import fill_prefetch
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
        prefetch_templates: Mapping[str, str] | None = None,
    ) -> CDSRequest:
        """Build the :class:`CDSRequest` for ``hook``; a new UUID if ``hook_instance`` is None.

        ``prefetch_templates`` fills each key from the Bundle as the template's FHIR
        query would answer (a key it cannot satisfy is left out, with a warning);
        without them the Bundle goes under ``prefetch_key``.
        """
        prefetch: Mapping[str, Any] = (
            fill_prefetch(prefetch_templates, self.context, self.prefetch)
            if prefetch_templates is not None
            else {prefetch_key: self.prefetch}
        )
        return CDSRequest.model_validate(
            {
                "hook": hook,
                "hookInstance": hook_instance if hook_instance is not None else uuid4(),
                "fhirServer": fhir_server,
                "context": self.context,
                "prefetch": prefetch,
            }
        )
