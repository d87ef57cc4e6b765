"""Clinical Decision Support: a CDS Hooks 2.0 (v2.0.1) service over HTTP.

``GET /cds-services`` lists the services (discovery); ``POST /cds-services/{id}`` takes a
``CDSRequest`` and answers with the handler's ``CDSResponse``; ``POST
/cds-services/{id}/feedback`` takes the EHR's ``CDSFeedback`` on the cards. Every error is
a JSON body ``{"error": ...}`` with a 4xx/5xx status; the server itself never fails because
of one. A handler answers 412 (or any status) by raising Starlette's ``HTTPException``;
any other exception is a 500 whose body does not repeat the exception (it is logged).
Browser-based EHRs are served through CORS (allowed origins configurable, ``*`` by
default), and a :class:`~healthchain.use_cases.JwtVerifier` makes every call carry a
valid signed JWT (401 otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from healthchain._formatting import validation_summary
from healthchain.models import (
    CDSFeedback,
    CdsFhirData,
    CDSRequest,
    CDSResponse,
    Workflow,
)

from ._base import BaseUseCase
from ._service import Service, TokenVerifier

__all__ = ["ClinicalDecisionSupport", "create_cds_app"]

logger = logging.getLogger("healthchain.use_cases")

_BY_PATIENT = "?patient={{context.patientId}}"
_PREFETCH_TEMPLATES: Mapping[str, Mapping[str, str]] = {
    Workflow.PATIENT_VIEW: {
        "patient": "Patient/{{context.patientId}}",
        "encounters": "Encounter" + _BY_PATIENT,
        "conditions": "Condition" + _BY_PATIENT,
        "documents": "DocumentReference" + _BY_PATIENT,
    },
    Workflow.ENCOUNTER_DISCHARGE: {
        "patient": "Patient/{{context.patientId}}",
        "encounter": "Encounter/{{context.encounterId}}",
        "conditions": "Condition" + _BY_PATIENT,
        "procedures": "Procedure" + _BY_PATIENT,
        "medications": "MedicationRequest" + _BY_PATIENT,
        "documents": "DocumentReference" + _BY_PATIENT,
    },
}
_ORDER_TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "encounter": "Encounter/{{context.encounterId}}",
    "conditions": "Condition" + _BY_PATIENT,
    "documents": "DocumentReference" + _BY_PATIENT,
}


class ClinicalDecisionSupport(BaseUseCase):
    """A CDS Hooks service: the ``@api`` handler takes a ``CDSRequest`` and returns a
    ``CDSResponse``; the ``@ehr`` method returns ``CdsFhirData`` (or a ``CDSRequest``)."""

    supported_workflows: ClassVar[frozenset[str]] = frozenset(Workflow)

    def build_app(
        self,
        service: Service,
        *,
        cors_origins: Sequence[str] = ("*",),
        verifier: TokenVerifier | None = None,
    ) -> Starlette:
        """A CDS Hooks app serving ``service``."""
        return create_cds_app([service], cors_origins=cors_origins, verifier=verifier)

    def service_path(self, service_id: str) -> str:
        """``/cds-services/{service_id}``."""
        return f"/cds-services/{quote(service_id, safe='')}"

    def default_prefetch(self, workflow: str) -> Mapping[str, str]:
        """FHIR read and search templates for ``workflow`` (the patient, the encounter, and
        searches by patient), the kinds the spec expects EHRs to support for prefetch."""
        return dict(_PREFETCH_TEMPLATES.get(workflow, _ORDER_TEMPLATES))

    def make_request(
        self, data: Any, *, workflow: str, prefetch: Mapping[str, str] | None = None
    ) -> CDSRequest:
        """``CdsFhirData`` becomes a ``CDSRequest`` for ``workflow``, with each ``prefetch``
        template answered from its Bundle (without templates: the whole Bundle under
        ``"bundle"``); a ``CDSRequest`` passes as is."""
        if isinstance(data, CDSRequest):
            if data.hook != workflow:
                raise ValueError(
                    f"the @ehr method returned a CDSRequest for hook {data.hook!r}, "
                    f"but its workflow is {workflow!r}"
                )
            return data
        if isinstance(data, CdsFhirData):
            return data.to_request(workflow, prefetch_templates=prefetch)
        raise TypeError(
            f"the @ehr method returned {type(data).__name__}, expected CdsFhirData "
            "(or a CDSRequest)"
        )

    def parse_response(self, content: bytes) -> CDSResponse:
        """Validate a response body as a ``CDSResponse``."""
        return CDSResponse.model_validate_json(content)


def create_cds_app(
    services: Sequence[Service],
    *,
    cors_origins: Sequence[str] = ("*",),
    verifier: TokenVerifier | None = None,
) -> Starlette:
    """A Starlette app with CDS Hooks discovery and one endpoint (and feedback) per service.

    ``cors_origins`` are the browser origins allowed to call it (``"*"``: any); with a
    ``verifier``, every call (discovery too, as the spec has clients sign every call)
    needs ``Authorization: Bearer <JWT>``.
    Plain Starlette rather than FastAPI: requests are validated by the CDS models here,
    and the lighter stack keeps each request's step on the event loop short.
    """
    by_id: dict[str, Service] = {}
    for service in services:
        other = by_id.setdefault(service.id, service)
        if other is not service:
            raise ValueError(
                f"service ids must be unique: {service.id!r} is given twice (hooks "
                f"{other.hook!r} and {service.hook!r}); in CDS Hooks an id names one endpoint, "
                f"{{baseUrl}}/cds-services/{{id}}, for exactly one hook: give each its own id"
            )
    if isinstance(cors_origins, str) or not all(
        isinstance(origin, str) and origin for origin in cors_origins
    ):
        raise ValueError(
            f"cors_origins must be a list of origins such as ['https://ehr.example.org'] "
            f"(or ['*'] for any), got {cors_origins!r}"
        )
    discovery = {"services": [_describe(service) for service in services]}

    async def list_services(request: Request) -> Response:
        if verifier is not None:
            refused = _check_token(verifier, request)
            if refused is not None:
                return refused
        return JSONResponse(discovery)

    async def read_call(request: Request, model: type[_M]) -> tuple[Service, _M] | Response:
        service_id: str = request.path_params["service_id"]
        service = by_id.get(service_id)
        if service is None:
            return _error(
                404,
                f"no CDS service with id {service_id!r}; GET /cds-services lists them",
            )
        if verifier is not None:
            refused = _check_token(verifier, request)
            if refused is not None:
                return refused
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=499)  # nobody is waiting for an answer
        try:
            return service, model.model_validate_json(body)
        except ValidationError as exc:
            return _error(
                422,
                f"the body is not a valid {model.__name__}: {validation_summary(exc)}",
                detail=exc.errors(include_url=False, include_input=False, include_context=False),
            )

    async def call_service(request: Request) -> Response:
        read = await read_call(request, CDSRequest)
        if isinstance(read, Response):
            return read
        service, cds_request = read
        if cds_request.hook != service.hook:
            return _error(
                400,
                f"service {service.id!r} answers hook {service.hook!r}, not {cds_request.hook!r}",
            )
        try:
            result = await service.handler(cds_request)
        except HTTPException as exc:
            return _error(exc.status_code, str(exc.detail), headers=exc.headers)
        except Exception:
            logger.exception("CDS service %r: handler %r raised", service.id, service.name)
            return _error(500, f"the CDS service {service.id!r} failed; its log has the details")
        if not isinstance(result, CDSResponse):
            return _error(
                500,
                f"handler {service.name!r} returned {type(result).__name__}, expected CDSResponse",
            )
        return Response(
            result.model_dump_json(by_alias=True, exclude_none=True),
            media_type="application/json",
        )

    async def take_feedback(request: Request) -> Response:
        read = await read_call(request, CDSFeedback)
        if isinstance(read, Response):
            return read
        service, feedback = read
        if service.feedback is not None:
            try:
                await service.feedback(feedback)
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail), headers=exc.headers)
            except Exception:
                logger.exception("CDS service %r: its feedback handler raised", service.id)
                return _error(
                    500, f"the CDS service {service.id!r} failed; its log has the details"
                )
        return Response(status_code=200)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    return Starlette(
        exception_handlers={HTTPException: http_error},
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        ],
        routes=[
            Route("/cds-services", list_services, methods=["GET"]),
            Route("/cds-services/{service_id}", call_service, methods=["POST"]),
            Route("/cds-services/{service_id}/feedback", take_feedback, methods=["POST"]),
        ],
    )


_M = TypeVar("_M", bound=BaseModel)


def _check_token(verifier: TokenVerifier, request: Request) -> Response | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401,
            "this CDS service requires 'Authorization: Bearer <JWT>' signed by a trusted "
            "CDS client",
            headers={"WWW-Authenticate": "Bearer"},
        )
    audience = str(request.url.replace(query=""))
    problem = verifier.verify(token.strip(), audience=audience)
    if problem is not None:
        return _error(
            401,
            f"the bearer token was refused: {problem}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return None


def _describe(service: Service) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hook": service.hook,
        "id": service.id,
        "title": service.title,
        "description": service.description,
        "prefetch": dict(service.prefetch),
        "usageRequirements": service.usage_requirements,
        "extension": dict(service.extension) if service.extension is not None else None,
    }
    # CDS Hooks 2.0: "JSON elements SHALL NOT be null or empty".
    return {key: value for key, value in entry.items() if value}


def _error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)
