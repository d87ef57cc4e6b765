"""Clinical Decision Support: a CDS Hooks 2.0 service over HTTP.

``GET /cds-services`` lists the services (discovery); ``POST /cds-services/{id}`` takes a
``CDSRequest`` and answers with the handler's ``CDSResponse``. Every error is a JSON body
``{"error": ...}`` with a 4xx/5xx status; the server itself never fails because of one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from healthchain.models import (
    DEFAULT_PREFETCH_KEY,
    CdsFhirData,
    CDSRequest,
    CDSResponse,
    Workflow,
)

from ._base import BaseUseCase, Service

__all__ = ["ClinicalDecisionSupport", "create_cds_app"]

logger = logging.getLogger("healthchain.use_cases")

_PREFETCH_TEMPLATE = {DEFAULT_PREFETCH_KEY: "Patient/{{context.patientId}}/$everything"}


class ClinicalDecisionSupport(BaseUseCase):
    """A CDS Hooks service: the ``@api`` handler takes a ``CDSRequest`` and returns a
    ``CDSResponse``; the ``@ehr`` method returns ``CdsFhirData`` (or a ``CDSRequest``)."""

    supported_workflows: ClassVar[frozenset[str]] = frozenset(Workflow)

    def build_app(self, service: Service) -> Starlette:
        """A CDS Hooks app serving ``service``."""
        return create_cds_app([service])

    def service_path(self, service_id: str) -> str:
        """``/cds-services/{service_id}``."""
        return f"/cds-services/{quote(service_id, safe='')}"

    def default_prefetch(self, workflow: str) -> Mapping[str, str]:
        """The Bundle the client sends, under the models' default prefetch key."""
        return dict(_PREFETCH_TEMPLATE)

    def make_request(self, data: Any, *, workflow: str) -> CDSRequest:
        """``CdsFhirData`` becomes a ``CDSRequest`` for ``workflow``; a request passes as is."""
        if isinstance(data, CDSRequest):
            if data.hook != workflow:
                raise ValueError(
                    f"the @ehr method returned a CDSRequest for hook {data.hook!r}, "
                    f"but its workflow is {workflow!r}"
                )
            return data
        if isinstance(data, CdsFhirData):
            return data.to_request(workflow)
        raise TypeError(
            f"the @ehr method returned {type(data).__name__}, expected CdsFhirData "
            "(or a CDSRequest)"
        )

    def parse_response(self, content: bytes) -> CDSResponse:
        """Validate a response body as a ``CDSResponse``."""
        return CDSResponse.model_validate_json(content)


def create_cds_app(services: Sequence[Service]) -> Starlette:
    """A Starlette app with CDS Hooks discovery and one endpoint per service.

    Plain Starlette rather than FastAPI: requests are validated by the CDS models here,
    and the lighter stack keeps each request's step on the event loop short.
    """
    by_id = {service.id: service for service in services}
    if len(by_id) != len(services):
        raise ValueError("service ids must be unique")
    discovery = {"services": [_describe(service) for service in services]}

    async def list_services(request: Request) -> Response:
        return JSONResponse(discovery)

    async def call_service(request: Request) -> Response:
        service_id: str = request.path_params["service_id"]
        service = by_id.get(service_id)
        if service is None:
            return _error(
                404,
                f"no CDS service with id {service_id!r}; GET /cds-services lists them",
            )
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response(status_code=499)  # nobody is waiting for an answer
        try:
            cds_request = CDSRequest.model_validate_json(body)
        except ValidationError as exc:
            return _error(
                422,
                f"the body is not a valid CDSRequest: {exc.error_count()} error(s)",
                detail=exc.errors(include_url=False, include_input=False, include_context=False),
            )
        if cds_request.hook != service.hook:
            return _error(
                400,
                f"service {service.id!r} answers hook {service.hook!r}, not {cds_request.hook!r}",
            )
        try:
            result = await service.handler(cds_request)
        except Exception as exc:
            logger.exception("CDS service %r: handler %r raised", service.id, service.name)
            return _error(500, f"handler {service.name!r} raised {type(exc).__name__}: {exc}")
        if not isinstance(result, CDSResponse):
            return _error(
                500,
                f"handler {service.name!r} returned {type(result).__name__}, expected CDSResponse",
            )
        return Response(
            result.model_dump_json(by_alias=True, exclude_none=True),
            media_type="application/json",
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    return Starlette(
        exception_handlers={HTTPException: http_error},
        routes=[
            Route("/cds-services", list_services, methods=["GET"]),
            Route("/cds-services/{service_id}", call_service, methods=["POST"]),
        ],
    )


def _describe(service: Service) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hook": service.hook,
        "id": service.id,
        "title": service.title,
        "description": service.description,
    }
    if service.prefetch:
        entry["prefetch"] = dict(service.prefetch)
    return {key: value for key, value in entry.items() if value is not None}


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)
