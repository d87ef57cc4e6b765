"""CDS Hooks 2.0 hook names and the ``context`` each hook carries.

A known hook's context must have its required fields with the right types (a typo such as
``patientID`` fails naming the missing ``patientId``); other keys, such as ``extension`` or
an optional field a later version of the hook adds, are accepted and kept. Any other hook
gets a permissive :class:`HookContext`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from pydantic import Field

from ._fhir import FhirBundle
from ._wire import WireModel

__all__ = [
    "CONTEXT_MODELS",
    "EncounterDischargeContext",
    "HookContext",
    "OrderSelectContext",
    "OrderSignContext",
    "PatientViewContext",
    "Workflow",
]


class Workflow(StrEnum):
    """The CDS Hooks this project's sandbox and data generator support."""

    PATIENT_VIEW = "patient-view"
    ORDER_SELECT = "order-select"
    ORDER_SIGN = "order-sign"
    ENCOUNTER_DISCHARGE = "encounter-discharge"


class HookContext(WireModel):
    """The context of a hook call; the base of the per-hook contexts, open to any keys."""


class _KnownHookContext(HookContext):
    userId: str = Field(min_length=1)
    """The FHIR id of the current user, e.g. ``"Practitioner/123"``."""
    patientId: str = Field(min_length=1)
    """The FHIR id of the patient in context."""
    encounterId: str | None = Field(default=None, min_length=1)
    """The FHIR id of the encounter in context, if any."""


class PatientViewContext(_KnownHookContext):
    """Context of ``patient-view``: the user opened a patient's record."""


class OrderSelectContext(_KnownHookContext):
    """Context of ``order-select``: the user selected orders from a draft list."""

    selections: list[str] = Field(min_length=1)
    """Ids of the newly selected orders, e.g. ``["MedicationRequest/abc"]``."""
    draftOrders: FhirBundle
    """A Bundle of the draft orders, in status ``draft``."""


class OrderSignContext(_KnownHookContext):
    """Context of ``order-sign``: the user is about to sign orders."""

    draftOrders: FhirBundle
    """A Bundle of the orders about to be signed, in status ``draft``."""


class EncounterDischargeContext(_KnownHookContext):
    """Context of ``encounter-discharge``: the user is discharging a patient."""

    encounterId: str = Field(min_length=1)
    """The FHIR id of the encounter being ended (required for this hook)."""


CONTEXT_MODELS: Mapping[str, type[HookContext]] = MappingProxyType(
    {
        Workflow.PATIENT_VIEW: PatientViewContext,
        Workflow.ORDER_SELECT: OrderSelectContext,
        Workflow.ORDER_SIGN: OrderSignContext,
        Workflow.ENCOUNTER_DISCHARGE: EncounterDischargeContext,
    }
)
"""The context model of each supported hook, keyed by hook name."""
