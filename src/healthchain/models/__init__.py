"""CDS Hooks 2.0 requests and responses, and synthetic EHR data, as pydantic v2 models.

FHIR resources are the real ``fhir.resources`` models for FHIR R4B (see ``FHIR_VERSION``).
Every model round-trips through JSON::

    body = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert type(model).model_validate(body) == model

``CdsFhirData.to_request(hook)`` turns generated data into the ``CDSRequest`` an EHR sends.
"""

from __future__ import annotations

from ._data import DEFAULT_PREFETCH_KEY, CdsFhirData
from ._feedback import AcceptedSuggestion, CardFeedback, CDSFeedback, OverrideReason
from ._fhir import FHIR_VERSION, FhirBundle, FhirResource, iter_resources
from ._hooks import (
    CONTEXT_MODELS,
    EncounterDischargeContext,
    HookContext,
    OrderSelectContext,
    OrderSignContext,
    PatientViewContext,
    Workflow,
)
from ._requests import CDSRequest, FhirAuthorization
from ._responses import Action, Card, CDSResponse, Coding, Link, Source, Suggestion

__all__ = [
    "CONTEXT_MODELS",
    "DEFAULT_PREFETCH_KEY",
    "FHIR_VERSION",
    "AcceptedSuggestion",
    "Action",
    "CDSFeedback",
    "CDSRequest",
    "CDSResponse",
    "Card",
    "CardFeedback",
    "CdsFhirData",
    "Coding",
    "EncounterDischargeContext",
    "FhirAuthorization",
    "FhirBundle",
    "FhirResource",
    "HookContext",
    "Link",
    "OrderSelectContext",
    "OrderSignContext",
    "OverrideReason",
    "PatientViewContext",
    "Source",
    "Suggestion",
    "Workflow",
    "iter_resources",
]
