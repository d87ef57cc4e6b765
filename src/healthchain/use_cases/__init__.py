"""Use cases a sandbox runs: :class:`BaseUseCase` and the CDS Hooks service,
:class:`ClinicalDecisionSupport`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import BaseUseCase, SandboxRunner, Service

if TYPE_CHECKING:
    from ._cds import ClinicalDecisionSupport, create_cds_app

__all__ = [
    "BaseUseCase",
    "ClinicalDecisionSupport",
    "SandboxRunner",
    "Service",
    "create_cds_app",
]


def __getattr__(name: str) -> Any:
    # The CDS service (Starlette, the clinical models, FHIR) loads when first named.
    if name in ("ClinicalDecisionSupport", "create_cds_app"):
        from . import _cds

        return getattr(_cds, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
