"""FHIR types used by the CDS Hooks models, all from ``fhir.resources`` for FHIR R4B.

Why R4B: CDS Hooks clients (EHRs and their sandboxes) speak FHIR R4, and ``fhir.resources``
8.x ships R5 as its default and R4B (4.3.0) as its closest R4 module. For every resource this
project uses (Patient, Encounter, Condition, Procedure, MedicationRequest, ServiceRequest,
DocumentReference, Bundle) R4B is wire-compatible with R4, whereas R5 renamed or reshaped
fields an R4 EHR sends (``Encounter.class``, ``Encounter.period``, ``DocumentReference.context``).

``FhirResource`` and ``FhirBundle`` are the field types the models use. They validate through
the real ``fhir.resources`` classes, picking the class from ``resourceType``, and turn the
``KeyError`` that ``fhir.resources`` raises for an unknown ``resourceType`` into a pydantic
validation error that names the type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

from fhir.resources.R4B import fhirtypes
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from pydantic import SerializeAsAny, ValidatorFunctionWrapHandler, WrapValidator

__all__ = ["FHIR_VERSION", "FhirBundle", "FhirResource", "iter_resources"]

FHIR_VERSION = "R4B"
"""The ``fhir.resources`` module (and so the FHIR release) every model here uses."""

_R = TypeVar("_R", bound=Resource)


def _name_unknown_resource_type(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except KeyError as exc:
        # fhir.resources looks the class up as f"{release}.{resourceType}Type".
        key = str(exc.args[0]) if exc.args else ""
        name = key.rpartition(".")[2].removesuffix("Type")
        raise ValueError(
            f"resourceType {name!r} is not a FHIR {FHIR_VERSION} resource type; "
            "use a resource name such as 'Patient' or 'Encounter'"
        ) from None


FhirResource = Annotated[
    SerializeAsAny[fhirtypes.ResourceType], WrapValidator(_name_unknown_resource_type)
]
"""Any FHIR R4B resource, validated as the class its ``resourceType`` names."""

FhirBundle = Annotated[Bundle, WrapValidator(_name_unknown_resource_type)]
"""A FHIR R4B ``Bundle`` whose entries are validated as the classes they name."""


def iter_resources(bundle: Bundle, resource_type: type[_R]) -> Iterator[_R]:
    """Yield the entries of ``bundle`` that are instances of ``resource_type``, in order."""
    for entry in bundle.entry or ():
        if isinstance(entry.resource, resource_type):
            yield entry.resource
