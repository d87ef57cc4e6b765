"""Synthetic EHR data: valid FHIR R4B resources for each CDS Hooks workflow.

``CdsDataGenerator().generate(...)`` returns a :class:`healthchain.models.CdsFhirData`;
free text from a CSV column becomes a DocumentReference.
"""

from __future__ import annotations

from ._exceptions import (
    DataGeneratorError,
    EmptyFreeTextError,
    FreeTextColumnError,
    FreeTextError,
    FreeTextFileNotFoundError,
    WorkflowError,
)
from ._free_text import read_free_text
from ._generator import CdsDataGenerator

__all__ = [
    "CdsDataGenerator",
    "DataGeneratorError",
    "EmptyFreeTextError",
    "FreeTextColumnError",
    "FreeTextError",
    "FreeTextFileNotFoundError",
    "WorkflowError",
    "read_free_text",
]
