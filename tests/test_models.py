"""CDS Hooks models: JSON round trips, hook contexts, FHIR resources, rejection of bad input."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient
from pydantic import BaseModel, ValidationError

import healthchain.models
from healthchain.models import (
    CONTEXT_MODELS,
    DEFAULT_PREFETCH_KEY,
    FHIR_VERSION,
    Action,
    Card,
    CdsFhirData,
    CDSRequest,
    CDSResponse,
    Coding,
    EncounterDischargeContext,
    FhirAuthorization,
    HookContext,
    Link,
    OrderSelectContext,
    OrderSignContext,
    PatientViewContext,
    Source,
    Suggestion,
    Workflow,
    iter_resources,
)

HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1961-04-12"}
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    "subject": {"reference": "Patient/p1"},
}
DRAFT_ORDER = {
    "resourceType": "MedicationRequest",
    "id": "m1",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"text": "lisinopril 10 MG Oral Tablet"},
    "subject": {"reference": "Patient/p1"},
}
DRAFT_ORDERS = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": DRAFT_ORDER}],
}
BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [{"resource": PATIENT}, {"resource": ENCOUNTER}],
}
BASE_CONTEXT = {"userId": "Practitioner/u1", "patientId": "p1"}
CONTEXTS: dict[str, dict[str, Any]] = {
    "patient-view": BASE_CONTEXT,
    "order-select": {
        **BASE_CONTEXT,
        "encounterId": "e1",
        "selections": ["MedicationRequest/m1"],
        "draftOrders": DRAFT_ORDERS,
    },
    "order-sign": {**BASE_CONTEXT, "draftOrders": DRAFT_ORDERS},
    "encounter-discharge": {**BASE_CONTEXT, "encounterId": "e1"},
}


def wire(model: BaseModel) -> dict[str, Any]:
    """The model as it goes over the wire."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def request_body(hook: str, **extra: Any) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": HOOK_INSTANCE,
        "context": CONTEXTS[hook],
        "prefetch": {"patient": PATIENT, "bundle": BUNDLE},
        **extra,
    }


def error_locations(exc_info: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in exc_info.value.errors()]


def full_card() -> Card:
    return Card(
        uuid="c1",
        summary="Start anticoagulation review",
        indicator="warning",
        detail="**CHA2DS2-VASc** score is 3.",
        source=Source(
            label="Synthetic guideline service",
            url="https://example.org/guidelines",
            icon="https://example.org/icon.png",
            topic=Coding(code="af-review", system="https://example.org/topics", display="AF"),
        ),
        suggestions=[
            Suggestion(
                label="Order anticoagulation clinic review",
                uuid="s1",
                isRecommended=True,
                actions=[
                    Action(
                        type="create",
                        description="Draft a referral",
                        resource=MedicationRequest.model_validate(DRAFT_ORDER),
                    ),
                    Action(type="delete", description="Remove", resourceId="MedicationRequest/x"),
                ],
            )
        ],
        selectionBehavior="at-most-one",
        overrideReasons=[
            Coding(
                code="patient-declined",
                system="https://example.org/reasons",
                display="Patient declined",
            )
        ],
        links=[
            Link(label="Guideline", url="https://example.org/af", type="absolute"),
            Link(label="App", url="https://app.example.org/launch", type="smart", appContext="x"),
        ],
    )


def test_exports_are_pinned() -> None:
    assert sorted(healthchain.models.__all__) == sorted(
        [
            "CONTEXT_MODELS",
            "DEFAULT_PREFETCH_KEY",
            "FHIR_VERSION",
            "AcceptedSuggestion",
            "Action",
            "CDSFeedback",
            "CardFeedback",
            "OverrideReason",
            "CDSRequest",
            "CDSResponse",
            "Card",
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
            "PatientViewContext",
            "Source",
            "Suggestion",
            "Workflow",
            "iter_resources",
        ]
    )
    for name in healthchain.models.__all__:
        member = getattr(healthchain.models, name)
        if callable(member):
            assert member.__doc__, f"healthchain.models.{name} has no docstring"


def test_fhir_version_is_r4b() -> None:
    assert FHIR_VERSION == "R4B"
    assert Bundle.__module__ == "fhir.resources.R4B.bundle"


# -- requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook", "context_model"),
    [
        ("patient-view", PatientViewContext),
        ("order-select", OrderSelectContext),
        ("order-sign", OrderSignContext),
        ("encounter-discharge", EncounterDischargeContext),
    ],
)
def test_request_round_trips_with_its_hooks_context(
    hook: str, context_model: type[HookContext]
) -> None:
    body = request_body(hook)
    request = CDSRequest.model_validate(body)

    assert type(request.context) is context_model
    assert CONTEXT_MODELS[hook] is context_model
    assert request.hookInstance == uuid.UUID(HOOK_INSTANCE)
    assert isinstance(request.prefetch, dict)
    assert isinstance(request.prefetch["patient"], Patient)
    assert isinstance(request.prefetch["bundle"], Bundle)
    assert wire(request) == body
    assert CDSRequest.model_validate(wire(request)) == request
    assert CDSRequest.model_validate_json(json.dumps(wire(request))) == request


def test_order_contexts_hold_real_fhir_bundles() -> None:
    request = CDSRequest.model_validate(request_body("order-select"))

    assert isinstance(request.context, OrderSelectContext)
    orders = list(iter_resources(request.context.draftOrders, MedicationRequest))
    assert [order.id for order in orders] == ["m1"]


def test_unknown_hook_keeps_an_open_context() -> None:
    body = {"hook": "my-custom-hook", "hookInstance": HOOK_INSTANCE, "context": {"anything": 1}}
    request = CDSRequest.model_validate(body)

    assert type(request.context) is HookContext
    assert wire(request) == body


def test_request_with_authorization_round_trips() -> None:
    authorization = {
        "access_token": "synthetic-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds-service",
    }
    body = request_body(
        "patient-view", fhirServer="https://ehr.example.org/fhir", fhirAuthorization=authorization
    )
    request = CDSRequest.model_validate(body)

    assert isinstance(request.fhirAuthorization, FhirAuthorization)
    assert wire(request) == body


def test_null_prefetch_values_are_kept() -> None:
    body = {**request_body("patient-view"), "prefetch": {"patient": None}}
    assert wire(CDSRequest.model_validate(body)) == body


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"hook": ""}, ("hook",)),
        ({"hookInstance": "not-a-uuid"}, ("hookInstance",)),
        ({"fhirServer": "not a url"}, ("fhirServer",)),
        ({"context": {"userId": "Practitioner/u1"}}, ("context", "encounterId")),
        (
            {"context": {"userId": "u", "patientID": "p1", "encounterId": "Encounter/1"}},
            ("context", "patientId"),
        ),
        (
            {"prefetch": {"patient": {"resourceType": "Patient", "birthDate": "1961-13-40"}}},
            ("prefetch", "patient", "birthDate"),
        ),
        ({"prefetch": {"patient": {"resourceType": "NotAResource"}}}, ("prefetch", "patient")),
        ({"extension": "not an object"}, ("extension",)),
    ],
)
def test_bad_requests_fail_naming_the_field(change: dict[str, Any], location: tuple[str]) -> None:
    body = {**request_body("encounter-discharge"), **change}
    with pytest.raises(ValidationError) as exc_info:
        CDSRequest.model_validate(body)
    assert location in error_locations(exc_info)


def test_unknown_resource_type_error_names_the_type() -> None:
    body = {**request_body("patient-view"), "prefetch": {"x": {"resourceType": "Pateint"}}}
    with pytest.raises(ValidationError, match=r"resourceType 'Pateint' is not a FHIR R4B"):
        CDSRequest.model_validate(body)


def test_unknown_resource_type_inside_a_bundle_is_a_validation_error() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Nope"}}],
    }
    with pytest.raises(ValidationError, match="'Nope'") as exc_info:
        CDSRequest.model_validate({**request_body("patient-view"), "prefetch": {"b": bundle}})
    assert ("prefetch", "b") in error_locations(exc_info)


def test_order_select_needs_selections() -> None:
    context = {k: v for k, v in CONTEXTS["order-select"].items() if k != "selections"}
    with pytest.raises(ValidationError) as exc_info:
        CDSRequest.model_validate({**request_body("order-select"), "context": context})
    assert ("context", "selections") in error_locations(exc_info)


def test_authorization_needs_a_fhir_server() -> None:
    authorization = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "s",
        "subject": "c",
    }
    with pytest.raises(ValidationError, match="'fhirServer' is missing"):
        CDSRequest.model_validate(
            {**request_body("patient-view"), "fhirAuthorization": authorization}
        )


# -- responses ---------------------------------------------------------------------------


def test_full_response_round_trips() -> None:
    response = CDSResponse(
        cards=[full_card()],
        systemActions=[
            Action(
                type="update", description="Update", resource=Encounter.model_validate(ENCOUNTER)
            )
        ],
    )
    body = wire(response)

    assert body["cards"][0]["suggestions"][0]["actions"][0]["resource"] == DRAFT_ORDER
    assert body["systemActions"][0]["resource"]["class"] == ENCOUNTER["class"]
    again = CDSResponse.model_validate(body)
    assert again == response
    assert isinstance(again.systemActions, list)
    assert isinstance(again.systemActions[0].resource, Encounter)
    assert wire(again) == body


def test_empty_response_is_valid() -> None:
    assert wire(CDSResponse(cards=[])) == {"cards": []}


def test_summary_may_have_139_characters() -> None:
    card = Card(summary="x" * 139, indicator="info", source=Source(label="s"))
    assert Card.model_validate(wire(card)) == card


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"summary": "x" * 140}, ("summary",)),
        ({"summary": ""}, ("summary",)),
        ({"indicator": "urgent"}, ("indicator",)),
        ({"source": {}}, ("source", "label")),
        ({"source": {"label": "s", "url": "example.org"}}, ("source", "url")),
        ({"selectionBehavior": "all"}, ("selectionBehavior",)),
        ({"links": [{"label": "l", "url": "https://x.org", "type": "web"}]}, ("links", 0, "type")),
        (
            {
                "suggestions": [
                    {"label": "s", "actions": [{"type": "create", "description": "x"}]}
                ],
                "selectionBehavior": "any",
            },
            ("suggestions", 0, "actions", 0),
        ),
        ({"overrideReasons": [{"display": "no code"}]}, ("overrideReasons", 0, "code")),
        ({"source": {"label": "s", "topic": {"code": "c"}}}, ("source", "topic", "system")),
    ],
)
def test_bad_cards_fail_naming_the_field(change: dict[str, Any], location: tuple[Any]) -> None:
    body = {"summary": "ok", "indicator": "info", "source": {"label": "s"}, **change}
    with pytest.raises(ValidationError) as exc_info:
        Card.model_validate(body)
    assert location in error_locations(exc_info)


def test_suggestions_need_a_selection_behavior() -> None:
    with pytest.raises(ValidationError, match="needs a 'selectionBehavior'"):
        Card(
            summary="s",
            indicator="info",
            source=Source(label="l"),
            suggestions=[Suggestion(label="x")],
        )


def test_delete_action_needs_resource_ids() -> None:
    with pytest.raises(ValidationError, match="needs a 'resourceId'"):
        Action(type="delete", description="remove it")


def test_app_context_only_on_smart_links() -> None:
    with pytest.raises(ValidationError, match="only allowed on 'smart' links"):
        Link(label="l", url="https://x.org", type="absolute", appContext="a")


def test_response_needs_cards() -> None:
    with pytest.raises(ValidationError) as exc_info:
        CDSResponse.model_validate({})
    assert ("cards",) in error_locations(exc_info)


# -- CdsFhirData -------------------------------------------------------------------------


def test_fhir_data_round_trips() -> None:
    data = CdsFhirData.model_validate({"context": CONTEXTS["order-sign"], "prefetch": BUNDLE})

    assert isinstance(data.prefetch, Bundle)
    assert [type(r).__name__ for r in iter_resources(data.prefetch, Patient)] == ["Patient"]
    assert wire(data) == {"context": CONTEXTS["order-sign"], "prefetch": BUNDLE}
    assert CdsFhirData.model_validate(wire(data)) == data


def test_fhir_data_rejects_a_non_bundle_prefetch() -> None:
    with pytest.raises(ValidationError) as exc_info:
        CdsFhirData.model_validate({"context": {}, "prefetch": PATIENT})
    assert exc_info.value.errors()[0]["loc"][0] == "prefetch"


@pytest.mark.parametrize("hook", list(Workflow))
def test_to_request_builds_a_valid_request(hook: Workflow) -> None:
    data = CdsFhirData.model_validate({"context": CONTEXTS[hook], "prefetch": BUNDLE})
    request = data.to_request(hook, hook_instance=HOOK_INSTANCE)

    assert request.hook == hook
    assert str(request.hookInstance) == HOOK_INSTANCE
    assert type(request.context) is CONTEXT_MODELS[hook]
    assert request.prefetch == {DEFAULT_PREFETCH_KEY: data.prefetch}
    assert CDSRequest.model_validate(wire(request)) == request


def test_to_request_makes_a_fresh_hook_instance_and_checks_the_context() -> None:
    data = CdsFhirData.model_validate({"context": CONTEXTS["patient-view"], "prefetch": BUNDLE})
    first = data.to_request("patient-view", fhir_server="https://ehr.example.org/fhir")
    second = data.to_request("patient-view", prefetch_key="everything")

    assert first.hookInstance != second.hookInstance
    assert first.fhirServer == "https://ehr.example.org/fhir"
    assert second.prefetch is not None
    assert list(second.prefetch) == ["everything"]
    with pytest.raises(ValidationError) as exc_info:
        data.to_request("encounter-discharge")
    assert ("context", "encounterId") in error_locations(exc_info)
