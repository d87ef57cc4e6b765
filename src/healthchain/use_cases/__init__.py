"""Use cases a sandbox runs: :class:`BaseUseCase` and the CDS Hooks service,
:class:`ClinicalDecisionSupport`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import BaseUseCase
from ._service import Service, TokenVerifier

if TYPE_CHECKING:
    from ._cds import ClinicalDecisionSupport, create_cds_app
    from ._jwt import JwtSigner, JwtVerifier, generate_key_pair

__all__ = [
    "BaseUseCase",
    "ClinicalDecisionSupport",
    "JwtSigner",
    "JwtVerifier",
    "Service",
    "TokenVerifier",
    "create_cds_app",
    "generate_key_pair",
]


def __getattr__(name: str) -> Any:
    # The CDS service (Starlette, the clinical models, FHIR) loads when first named.
    if name in ("ClinicalDecisionSupport", "create_cds_app"):
        from . import _cds

        return getattr(_cds, name)
    if name in ("JwtSigner", "JwtVerifier", "generate_key_pair"):
        from . import _jwt

        return getattr(_jwt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
