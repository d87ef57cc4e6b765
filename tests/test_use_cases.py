"""The CDS Hooks app, in process through httpx.ASGITransport, and BaseUseCase itself."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from helpers.asgi import raw_request
from pydantic import ValidationError

from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse
from healthchain.use_cases import BaseUseCase, ClinicalDecisionSupport, Service, create_cds_app

CONTEXT = {"userId": "Practitioner/1", "patientId": "Patient/1"}


def request_body(hook: str = "patient-view", **overrides: Any) -> dict[str, Any]:
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": CONTEXT, **overrides}


def card(summary: str = "Looks fine") -> Card:
    return Card(summary=summary, indicator="info", source={"label": "test"})


async def echo(request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[card(f"hook {request.hook}")])


def make_service(handler: Any = echo, **overrides: Any) -> Service:
    options: dict[str, Any] = {
        "id": "echo",
        "hook": "patient-view",
        "handler": handler,
        "name": "echo",
        "title": "Echo",
        "description": "Answers with one card.",
        "prefetch": {"bundle": "Patient/{{context.patientId}}/$everything"},
    }
    options.update(overrides)
    return Service(**options)


def client_for(service: Service) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_cds_app([service]))
    return httpx.AsyncClient(transport=transport, base_url="http://cds")


@pytest.mark.anyio
async def test_discovery_describes_the_service() -> None:
    async with client_for(make_service()) as client:
        reply = await client.get("/cds-services")
    assert reply.status_code == 200
    assert reply.json() == {
        "services": [
            {
                "hook": "patient-view",
                "id": "echo",
                "title": "Echo",
                "description": "Answers with one card.",
                "prefetch": {"bundle": "Patient/{{context.patientId}}/$everything"},
            }
        ]
    }


@pytest.mark.anyio
async def test_a_valid_request_gets_the_handlers_response() -> None:
    async with client_for(make_service()) as client:
        reply = await client.post("/cds-services/echo", json=request_body())
    assert reply.status_code == 200
    response = CDSResponse.model_validate_json(reply.content)
    assert response.cards[0].summary == "hook patient-view"


@pytest.mark.anyio
async def test_an_unknown_service_id_is_a_404_naming_it() -> None:
    async with client_for(make_service()) as client:
        reply = await client.post("/cds-services/nope", json=request_body())
    assert reply.status_code == 404
    assert "'nope'" in reply.json()["error"]


@pytest.mark.anyio
async def test_an_invalid_body_is_a_422_naming_the_field() -> None:
    body = request_body(context={"userId": "Practitioner/1"})  # patientId missing
    async with client_for(make_service()) as client:
        reply = await client.post("/cds-services/echo", json=body)
    assert reply.status_code == 422
    payload = reply.json()
    assert "not a valid CDSRequest" in payload["error"]
    assert "patientId" in payload["error"] and "error(s)" not in payload["error"]
    assert any("patientId" in map(str, error["loc"]) for error in payload["detail"])


@pytest.mark.anyio
async def test_a_body_that_is_not_json_is_a_422() -> None:
    async with client_for(make_service()) as client:
        reply = await client.post("/cds-services/echo", content=b"{not json")
    assert reply.status_code == 422


@pytest.mark.anyio
async def test_a_request_for_another_hook_is_a_400_naming_both() -> None:
    body = request_body("encounter-discharge", context={**CONTEXT, "encounterId": "Encounter/1"})
    async with client_for(make_service()) as client:
        reply = await client.post("/cds-services/echo", json=body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "'patient-view'" in error
    assert "'encounter-discharge'" in error


@pytest.mark.anyio
async def test_a_handler_exception_is_a_500_logged_not_echoed_and_the_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: CDSRequest) -> CDSResponse:
        raise RuntimeError("model not loaded")

    async with client_for(make_service(broken, name="broken")) as client:
        first = await client.post("/cds-services/echo", json=request_body())
        second = await client.get("/cds-services")
    assert first.status_code == 500
    assert first.json() == {"error": "the CDS service 'echo' failed; its log has the details"}
    assert second.status_code == 200
    assert "model not loaded" in caplog.text


@pytest.mark.anyio
async def test_a_handler_returning_the_wrong_type_is_a_500_naming_the_type() -> None:
    async def wrong(request: CDSRequest) -> Any:
        return {"cards": []}

    async with client_for(make_service(wrong, name="wrong")) as client:
        reply = await client.post("/cds-services/echo", json=request_body())
    assert reply.status_code == 500
    assert reply.json()["error"] == "handler 'wrong' returned dict, expected CDSResponse"


def test_service_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        create_cds_app([make_service(), make_service()])


def test_make_request_turns_ehr_data_into_a_request_for_the_workflow() -> None:
    use_case = ClinicalDecisionSupport()
    request = CDSRequest.model_validate(request_body())
    assert use_case.make_request(request, workflow="patient-view") is request
    with pytest.raises(ValueError, match=r"'patient-view'.*'order-sign'"):
        use_case.make_request(request, workflow="order-sign")
    with pytest.raises(TypeError, match="returned dict, expected CdsFhirData"):
        use_case.make_request({"context": CONTEXT}, workflow="patient-view")


def test_make_request_accepts_generated_data() -> None:
    from healthchain.data_generators import CdsDataGenerator

    data = CdsDataGenerator("patient-view").generate(random_seed=3)
    assert isinstance(data, CdsFhirData)
    request = ClinicalDecisionSupport().make_request(data, workflow="patient-view")
    assert request.hook == "patient-view"
    assert request.prefetch is not None
    assert "bundle" in request.prefetch


def test_parse_response_validates() -> None:
    use_case = ClinicalDecisionSupport()
    assert use_case.parse_response(b'{"cards": []}') == CDSResponse(cards=[])
    with pytest.raises(ValidationError, match="cards"):
        use_case.parse_response(b'{"cardz": []}')


def test_service_path_quotes_the_id() -> None:
    assert ClinicalDecisionSupport().service_path("a b/c") == "/cds-services/a%20b%2Fc"


def test_supported_workflows() -> None:
    assert ClinicalDecisionSupport.supported_workflows == {
        "patient-view",
        "order-select",
        "order-sign",
        "encounter-discharge",
    }
    assert BaseUseCase.supported_workflows == frozenset()


def test_an_undecorated_use_case_cannot_start_a_sandbox() -> None:
    class Plain(ClinicalDecisionSupport):
        pass

    use_case = Plain()
    assert use_case.experiment_tracker is None
    with pytest.raises(TypeError, match=r"Plain is not decorated with @sandbox"):
        use_case.start_sandbox()


@pytest.mark.anyio
async def test_an_undecorated_use_case_cannot_start_a_sandbox_async() -> None:
    with pytest.raises(TypeError, match=r"ClinicalDecisionSupport is not decorated"):
        await ClinicalDecisionSupport().astart_sandbox()


def test_the_base_use_case_defines_no_service() -> None:
    with pytest.raises(NotImplementedError, match="ClinicalDecisionSupport"):
        BaseUseCase().build_app(make_service())


def test_closing_a_use_case_without_a_tracker_is_a_no_op() -> None:
    with ClinicalDecisionSupport() as use_case:
        before = dict(vars(use_case))
    assert use_case.experiment_tracker is None
    use_case.close()
    # Nothing changed, and the use case still serves.
    assert vars(use_case) == before
    with use_case:
        app = use_case.build_app(make_service())
    assert use_case.service_path("echo") == "/cds-services/echo"
    assert callable(app)


@pytest.mark.anyio
async def test_a_client_that_disconnected_gets_no_error_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_cds_app([make_service()])
    sent = await raw_request(app, "POST", b"/cds-services/echo", disconnected=True)
    assert sent[0]["status"] == 499
    # (asyncio's own debug warnings about a slow step, on a loaded machine, aside)
    assert [r for r in caplog.records if r.name != "asyncio"] == []


@pytest.mark.anyio
async def test_unknown_paths_and_methods_are_json_errors() -> None:
    async with client_for(make_service()) as client:
        missing = await client.get("/nowhere")
        wrong_method = await client.get("/cds-services/echo")
    assert missing.status_code == 404
    assert missing.json() == {"error": "GET /nowhere: Not Found"}
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "GET /cds-services/echo: Method Not Allowed"}
