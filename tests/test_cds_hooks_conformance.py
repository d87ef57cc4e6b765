"""CDS Hooks 2.0 (v2.0.1, HL7) conformance of the service, the models and the EHR client.

Organised by the spec's sections. Quotes are the spec's words; the JSON fixtures are the
spec's published examples (discovery, request, card, suggestion with actions, system
actions, feedback) and the contexts of the four hooks from the CDS Hooks library pages.
"""

from __future__ import annotations

import copy
import json
import socket
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient
from helpers.storage import Storage
from pydantic import ValidationError
from starlette.exceptions import HTTPException

import healthchain as hc
from healthchain import models
from healthchain.data_generators import CdsDataGenerator
from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse
from healthchain.sandbox import SandboxConfigError, ServiceConfig
from healthchain.use_cases import ClinicalDecisionSupport, Service, create_cds_app

# --- The spec's examples -------------------------------------------------------------

DISCOVERY_EXAMPLE: dict[str, Any] = {
    "services": [
        {
            "hook": "patient-view",
            "title": "Static CDS Service Example",
            "description": "An example of a CDS Service that returns a static set of cards",
            "id": "static-patient-greeter",
            "prefetch": {"patientToGreet": "Patient/{{context.patientId}}"},
        },
        {
            "hook": "order-select",
            "title": "Order Echo CDS Service",
            "description": "An example of a CDS Service that simply echoes the order(s) "
            "being placed",
            "id": "order-echo",
            "prefetch": {
                "patient": "Patient/{{context.patientId}}",
                "medications": "MedicationRequest?patient={{context.patientId}}",
            },
        },
    ]
}

DISCOVERY_EXTENSION_EXAMPLE: dict[str, Any] = {
    "services": [
        {
            "title": "Example CDS Service Discovery",
            "hook": "patient-view",
            "id": "patientview",
            "prefetch": {"patient": "Patient/{{context.patientId}}"},
            "description": "clinical decision support for patient view",
            "extension": {
                "example-client-conformance": "http://hooks.example.org/fhir/102/Conformance/patientview"
            },
        }
    ]
}

REQUEST_EXAMPLE: dict[str, Any] = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {
        "patientToGreet": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "1288992",
            "active": True,
        }
    },
}

# The card of the example response, with the spec's Source example topic, a suggestion
# carrying its create-action example, and its overrideReasons example.
CARD_EXAMPLE: dict[str, Any] = {
    "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "summary": "Example Card",
    "indicator": "info",
    "detail": "This is an example card.",
    "source": {
        "label": "Static CDS Service Example",
        "url": "https://example.com",
        "icon": "https://example.com/img/icon-100px.png",
        "topic": {
            "code": "12345",
            "display": "Example Topic",
            "system": "http://example.org/cds-services/fhir/CodeSystem/topics",
        },
    },
    "suggestions": [
        {
            "label": "Take a certain action",
            "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152",
            "isRecommended": True,
            "actions": [
                {
                    "type": "create",
                    "description": "Create a prescription for Acetaminophen 250 MG",
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "id": "demoMedicationRequest",
                        "status": "draft",
                        "intent": "order",
                        "medicationCodeableConcept": {
                            "coding": [
                                {
                                    "code": "123",
                                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "display": "Acetaminophen 250 MG",
                                }
                            ]
                        },
                        "subject": {"reference": "Patient/example"},
                    },
                }
            ],
        }
    ],
    "selectionBehavior": "at-most-one",
    "overrideReasons": [
        {
            "code": "reason-code-provided-by-service",
            "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
            "display": "Patient refused",
        },
        {
            "code": "12354",
            "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
            "display": "Contraindicated",
        },
    ],
    "links": [
        {"label": "Google", "url": "https://google.com", "type": "absolute"},
        {"label": "Github", "url": "https://github.com", "type": "absolute"},
        {
            "label": "SMART Example App",
            "url": "https://smart.example.com/launch",
            "type": "smart",
            "appContext": '{"session":3456356,"settings":{"module":4235}}',
        },
    ],
}

DELETE_ACTION_EXAMPLE: dict[str, Any] = {
    "type": "delete",
    "description": "Remove the inappropriate order",
    "resourceId": "ServiceRequest/example-MRI-59879846",
}

SYSTEM_ACTIONS_EXAMPLE: dict[str, Any] = {
    "cards": [],
    "systemActions": [
        {
            "type": "update",
            "description": "Update the order to record the appropriateness score",
            "resource": {
                "resourceType": "ServiceRequest",
                "id": "example-MRI-59879846",
                "status": "draft",
                "intent": "plan",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "36801-9"}],
                    "text": "MRA Knee Vessels Right",
                },
                "subject": {"reference": "Patient/MRI-59879846"},
                "extension": [
                    {
                        "url": "http://fhir.org/argonaut/Extension/pama-rating",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "http://fhir.org/argonaut/CodeSystem/pama-rating",
                                    "code": "appropriate",
                                }
                            ]
                        },
                    }
                ],
            },
        }
    ],
}

FEEDBACK_ACCEPTED_EXAMPLE: dict[str, Any] = {
    "feedback": [
        {
            "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2020-12-11T00:00:00Z",
        }
    ]
}

FEEDBACK_OVERRIDDEN_EXAMPLE: dict[str, Any] = {
    "feedback": [
        {
            "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
            "outcome": "overridden",
            "outcomeTimestamp": "2020-12-11T00:00:00Z",
        }
    ]
}

FEEDBACK_OVERRIDE_REASON_EXAMPLE: dict[str, Any] = {
    "feedback": [
        {
            "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {
                    "code": "d7ecf885",
                    "system": "https://example.com/cds-hooks/override-reason-system",
                },
                "userComment": "A comment entered by the clinician.",
            },
            "outcomeTimestamp": "2020-12-11T00:00:00Z",
        }
    ]
}

RESPONSE_EXAMPLE: dict[str, Any] = {
    "cards": [
        {
            "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
            "summary": "Example Card",
            "indicator": "info",
            "detail": "This is an example card.",
            "source": {
                "label": "Static CDS Service Example",
                "url": "https://example.com",
                "icon": "https://example.com/img/icon-100px.png",
            },
            "links": [
                {"label": "Google", "url": "https://google.com", "type": "absolute"},
                {"label": "Github", "url": "https://github.com", "type": "absolute"},
                {
                    "label": "SMART Example App",
                    "url": "https://smart.example.com/launch",
                    "type": "smart",
                    "appContext": '{"session":3456356,"settings":{"module":4235}}',
                },
            ],
        },
        {
            "summary": "Another card",
            "indicator": "warning",
            "source": {"label": "Static CDS Service Example"},
            "overrideReasons": [
                {
                    "code": "reason-code-provided-by-service",
                    "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
                    "display": "Patient refused",
                },
                {
                    "code": "12354",
                    "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
                    "display": "Contraindicated",
                },
            ],
        },
    ]
}

REQUEST_EXTENSION_EXAMPLE: dict[str, Any] = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://fhir.example.org:9080",
    "hook": "patient-view",
    "context": {"userId": "Practitioner/example"},
    "extension": {
        "com.example.timestamp": "2017-11-27T22:13:25Z",
        "com.cds-hooks.sandbox.myextension-practitionerspecialty": "gastroenterology",
    },
}

# The "Example (R4)" context of the order-select hook page, as published.
ORDER_SELECT_R4_EXAMPLE: dict[str, Any] = {
    "userId": "PractitionerRole/123",
    "patientId": "1288992",
    "encounterId": "89284",
    "selections": [
        "NutritionOrder/pureeddiet-simple",
        "MedicationRequest/smart-MedicationRequest-103",
    ],
    "draftOrders": {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "NutritionOrder",
                    "id": "pureeddiet-simple",
                    "identifier": [
                        {
                            "system": "http://goodhealthhospital.org/nutrition-requests",
                            "value": "123",
                        }
                    ],
                    "status": "draft",
                    "patient": {"reference": "Patient/1288992"},
                    "dateTime": "2014-09-17",
                    "orderer": {"reference": "Practitioner/example", "display": "Dr Adam Careful"},
                    "oralDiet": {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://snomed.info/sct",
                                        "code": "226211001",
                                        "display": "Pureed diet",
                                    },
                                    {
                                        "system": "http://goodhealthhospital.org/diet-type-codes",
                                        "code": "1010",
                                        "display": "Pureed diet",
                                    },
                                ],
                                "text": "Pureed diet",
                            }
                        ],
                        "schedule": [
                            {
                                "repeat": {
                                    "boundsPeriod": {"start": "2015-02-10"},
                                    "frequency": 3,
                                    "period": 1,
                                    "periodUnit": "d",
                                }
                            }
                        ],
                        "texture": [
                            {
                                "modifier": {
                                    "coding": [
                                        {
                                            "system": "http://snomed.info/sct",
                                            "code": "228055009",
                                            "display": "Liquidized food",
                                        }
                                    ],
                                    "text": "Pureed",
                                }
                            }
                        ],
                        "fluidConsistencyType": [
                            {
                                "coding": [
                                    {
                                        "system": "http://snomed.info/sct",
                                        "code": "439021000124105",
                                        "display": "Dietary liquid consistency - nectar thick liquid",  # noqa: E501 (the spec's text)
                                    }
                                ],
                                "text": "Nectar thick liquids",
                            }
                        ],
                    },
                    "supplement": [
                        {
                            "type": {
                                "coding": [
                                    {
                                        "system": "http://snomed.info/sct",
                                        "code": "442971000124100",
                                        "display": "Adult high energy formula",
                                    },
                                    {
                                        "system": "http://goodhealthhospital.org/supplement-type-codes",
                                        "code": "1040",
                                        "display": "Adult high energy pudding",
                                    },
                                ],
                                "text": "Adult high energy pudding",
                            },
                            "productName": "Ensure Pudding 4 oz container",
                            "instruction": "Ensure Pudding at breakfast, lunch, supper",
                        }
                    ],
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "smart-MedicationRequest-103",
                    "meta": {"lastUpdated": "2018-04-30T13:25:40.845-04:00"},
                    "text": {
                        "status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml">Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension (rxnorm: 617993)</div>',  # noqa: E501 (the spec's text)
                    },
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [
                            {
                                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                "code": "617993",
                                "display": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",  # noqa: E501 (the spec's text)
                            }
                        ],
                        "text": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",  # noqa: E501 (the spec's text)
                    },
                    "subject": {"reference": "Patient/1288992"},
                    "dosageInstruction": [
                        {
                            "text": "5 mL bid x 10 days",
                            "timing": {
                                "repeat": {
                                    "boundsPeriod": {"start": "2005-01-04"},
                                    "frequency": 2,
                                    "period": 1,
                                    "periodUnit": "d",
                                }
                            },
                            "doseAndRate": {
                                "doseQuantity": {
                                    "value": 5,
                                    "unit": "mL",
                                    "system": "http://unitsofmeasure.org",
                                    "code": "mL",
                                }
                            },
                        }
                    ],
                    "dispenseRequest": {
                        "numberOfRepeatsAllowed": 1,
                        "quantity": {
                            "value": 1,
                            "unit": "mL",
                            "system": "http://unitsofmeasure.org",
                            "code": "mL",
                        },
                        "expectedSupplyDuration": {
                            "value": 10,
                            "unit": "days",
                            "system": "http://unitsofmeasure.org",
                            "code": "d",
                        },
                    },
                }
            },
        ],
    },
}

# order-sign's R4 example is the same Bundle without "selections", with the dose given as
# Dosage.doseQuantity (an STU3 element) instead of Dosage.doseAndRate.
ORDER_SIGN_R4_EXAMPLE: dict[str, Any] = copy.deepcopy(
    {key: value for key, value in ORDER_SELECT_R4_EXAMPLE.items() if key != "selections"}
)
_DOSAGE = ORDER_SIGN_R4_EXAMPLE["draftOrders"]["entry"][1]["resource"]["dosageInstruction"][0]
_DOSAGE["doseQuantity"] = _DOSAGE.pop("doseAndRate")["doseQuantity"]

# The "Examples" contexts of the patient-view and encounter-discharge hook pages.
HOOK_CONTEXTS: dict[str, dict[str, Any]] = {
    "patient-view": {"userId": "Practitioner/abc", "patientId": "1288992", "encounterId": "456"},
    "encounter-discharge": {
        "userId": "PractitionerRole/A2340113",
        "patientId": "1288992",
        "encounterId": "456",
    },
}


# --- Helpers ---------------------------------------------------------------------------


def new_body(hook: str = "patient-view", **changes: Any) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": copy.deepcopy(HOOK_CONTEXTS.get(hook, {})),
        **changes,
    }


async def one_card(request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[Card(summary="ok", indicator="info", source={"label": "t"})])


def service(handler: Any = one_card, **changes: Any) -> Service:
    options: dict[str, Any] = {
        "id": "svc",
        "hook": "patient-view",
        "handler": handler,
        "name": "svc",
        "description": "A test service.",
        **changes,
    }
    return Service(**options)


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cds")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- Discovery -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_discovery_serves_the_spec_example_exactly() -> None:
    """Discovery: "hook", "id" and "description" are REQUIRED, "title" and "prefetch"
    OPTIONAL; the spec's own response comes back as published."""
    services = [
        service(
            id=entry["id"],
            hook=entry["hook"],
            title=entry["title"],
            description=entry["description"],
            prefetch=entry["prefetch"],
        )
        for entry in DISCOVERY_EXAMPLE["services"]
    ]
    async with client_for(create_cds_app(services)) as client:
        reply = await client.get("/cds-services")
    assert reply.status_code == 200
    assert reply.json() == DISCOVERY_EXAMPLE


@pytest.mark.anyio
async def test_discovery_carries_a_service_extension_as_in_the_spec_example() -> None:
    """Extensions: "an extension defined on the discovery response could look like this"."""
    (entry,) = DISCOVERY_EXTENSION_EXAMPLE["services"]
    declared = service(
        id=entry["id"],
        title=entry["title"],
        description=entry["description"],
        prefetch=entry["prefetch"],
        extension=entry["extension"],
    )
    async with client_for(create_cds_app([declared])) as client:
        reply = await client.get("/cds-services")
    assert reply.json() == DISCOVERY_EXTENSION_EXAMPLE


@pytest.mark.parametrize("description", ["", "   "])
def test_discovery_description_is_required_so_an_empty_one_is_refused(description: str) -> None:
    """Discovery: "description | REQUIRED | string"; and "JSON elements SHALL NOT be null
    or empty", so a service without one is refused when it is defined."""
    with pytest.raises(ValueError, match="'description' must be a non-empty string"):
        service(description=description)


def test_the_sandbox_takes_the_description_from_the_handler_docstring() -> None:
    @hc.sandbox(service_config={"port": 0})
    class Documented(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view")
        def load(self) -> CDSRequest:
            return CDSRequest.model_validate(new_body())

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            """Greets the patient.

            More text that discovery does not show.
            """
            return CDSResponse(cards=[])

    from healthchain.sandbox._plan import make_plan

    plan = make_plan(Documented(), None, ServiceConfig())
    assert plan.service.description == "Greets the patient."


@pytest.mark.anyio
async def test_usage_requirements_and_declared_prefetch_are_advertised() -> None:
    """Discovery: "usageRequirements | OPTIONAL | string | Human-friendly description of
    any preconditions for the use of this CDS Service." Declared with ``@api(...)``."""

    @hc.sandbox(service_config={"port": 0})
    class Declared(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view")
        def load(self) -> CDSRequest:
            return CDSRequest.model_validate(new_body())

        @hc.api(
            title="Greeter",
            description="Greets the patient.",
            usage_requirements="Note: the patient must be registered.",
            prefetch={"patientToGreet": "Patient/{{context.patientId}}"},
        )
        def svc(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

    from healthchain.sandbox._plan import make_plan

    plan = make_plan(Declared(), "greeter", ServiceConfig())
    async with client_for(plan.app) as client:
        reply = await client.get("/cds-services")
    assert reply.json() == {
        "services": [
            {
                "hook": "patient-view",
                "id": "greeter",
                "title": "Greeter",
                "description": "Greets the patient.",
                "prefetch": {"patientToGreet": "Patient/{{context.patientId}}"},
                "usageRequirements": "Note: the patient must be registered.",
            }
        ]
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"usage_requirements": ""}, r"@api\(usage_requirements=...\) must be a non-empty"),
        ({"prefetch": {"patient": ""}}, r"@api\(prefetch=...\) maps prefetch keys"),
        ({"prefetch": "Patient/{{context.patientId}}"}, r"@api\(prefetch=...\) maps"),
    ],
)
def test_bad_discovery_declarations_are_refused_at_decoration(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(SandboxConfigError, match=message):
        hc.api(**options)


def test_one_service_id_serves_one_hook_and_the_error_says_why() -> None:
    """Discovery: "id | REQUIRED | The {id} portion of the URL to this service which is
    available at {baseUrl}/cds-services/{id}" - one endpoint, so one hook."""
    with pytest.raises(ValueError, match="service ids must be unique") as exc_info:
        create_cds_app([service(), service(hook="order-sign")])
    message = str(exc_info.value)
    assert "'svc' is given twice" in message
    assert "'patient-view'" in message and "'order-sign'" in message
    assert "exactly one hook" in message


# --- Calling a CDS Service: the HTTP request --------------------------------------------


@pytest.mark.anyio
async def test_the_spec_request_example_is_answered() -> None:
    seen: list[CDSRequest] = []

    async def handler(request: CDSRequest) -> CDSResponse:
        seen.append(request)
        return await one_card(request)

    async with client_for(create_cds_app([service(handler)])) as client:
        reply = await client.post("/cds-services/svc", json=REQUEST_EXAMPLE)
    assert reply.status_code == 200, reply.text
    assert isinstance(seen[0].prefetch, dict)
    assert isinstance(seen[0].prefetch["patientToGreet"], Patient)


@pytest.mark.parametrize(
    ("hook", "context"),
    [
        ("patient-view", {"userId": "PractitionerRole/123", "patientId": "1288992"}),
        ("patient-view", HOOK_CONTEXTS["patient-view"]),
        ("encounter-discharge", HOOK_CONTEXTS["encounter-discharge"]),
    ],
)
def test_the_hook_pages_context_examples_are_valid_requests(
    hook: str, context: dict[str, Any]
) -> None:
    request = CDSRequest.model_validate(new_body(hook, context=context))
    assert request.context.model_dump(mode="json", exclude_none=True) == context


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("hook", "context", "not_fhir_r4"),
    [
        (
            "order-select",
            ORDER_SELECT_R4_EXAMPLE,
            [
                ["context", "draftOrders", "entry", 0, "resource", "intent"],
                [
                    "context",
                    "draftOrders",
                    "entry",
                    1,
                    "resource",
                    "dosageInstruction",
                    0,
                    "doseAndRate",
                ],
            ],
        ),
        (
            "order-sign",
            ORDER_SIGN_R4_EXAMPLE,
            [
                ["context", "draftOrders", "entry", 0, "resource", "intent"],
                [
                    "context",
                    "draftOrders",
                    "entry",
                    1,
                    "resource",
                    "dosageInstruction",
                    0,
                    "doseQuantity",
                ],
            ],
        ),
    ],
)
async def test_the_order_hook_pages_r4_examples_fail_only_where_they_are_not_fhir_r4(
    hook: str, context: dict[str, Any], not_fhir_r4: list[list[Any]]
) -> None:
    """The order-select and order-sign pages' R4 draftOrders are not valid FHIR R4:
    NutritionOrder.intent (1..1) is missing, the dose is not in a Dosage.doseAndRate
    array, and Bundle.type (1..1) is missing. Our service keeps rejecting missing required
    FHIR elements and wrong types, naming each; with those three corrected, the page's
    context, otherwise unchanged, is accepted."""
    async with client_for(create_cds_app([service(hook=hook)])) as client:
        published = await client.post("/cds-services/svc", json=new_body(hook, context=context))
        fixed = copy.deepcopy(context)
        orders = fixed["draftOrders"]
        orders["type"] = "collection"
        orders["entry"][0]["resource"]["intent"] = "order"
        dosage = orders["entry"][1]["resource"]["dosageInstruction"][0]
        quantity = dosage.pop("doseQuantity", None) or dosage.pop("doseAndRate")["doseQuantity"]
        dosage["doseAndRate"] = [{"doseQuantity": quantity}]
        corrected = await client.post("/cds-services/svc", json=new_body(hook, context=fixed))
    assert published.status_code == 422
    assert [error["loc"] for error in published.json()["detail"]] == not_fhir_r4
    assert corrected.status_code == 200, corrected.text


@pytest.mark.anyio
async def test_extension_in_the_request_and_its_context_is_accepted_and_kept() -> None:
    """Extensions: "the specification reserves the name extension and will never define an
    element with that name, allowing implementers to use it to provide custom behavior"."""
    seen: list[CDSRequest] = []

    async def handler(request: CDSRequest) -> CDSResponse:
        seen.append(request)
        return CDSResponse(cards=[])

    extension = {"com.example.timestamp": "2017-11-27T22:13:25Z"}
    body = new_body(extension=extension)
    body["context"]["extension"] = {"com.example.ward": "4B"}
    async with client_for(create_cds_app([service(handler)])) as client:
        reply = await client.post("/cds-services/svc", json=body)
    assert reply.status_code == 200, reply.text
    assert seen[0].extension == extension
    assert seen[0].context.model_dump()["extension"] == {"com.example.ward": "4B"}


def test_the_spec_request_extension_example_is_valid_and_kept() -> None:
    # The example's context is cut short (patient-view also requires patientId), so it
    # is checked under a hook this project does not know, whose context stays open.
    body = {**REQUEST_EXTENSION_EXAMPLE, "hook": "my-hook"}
    request = CDSRequest.model_validate(body)
    assert request.model_dump(mode="json", exclude_none=True) == body


@pytest.mark.anyio
async def test_an_optional_context_field_of_a_later_hook_version_is_tolerated() -> None:
    seen: list[CDSRequest] = []

    async def handler(request: CDSRequest) -> CDSResponse:
        seen.append(request)
        return CDSResponse(cards=[])

    body = new_body()
    body["context"]["appointmentId"] = "Appointment/1"  # not in patient-view 1.0
    body["newTopLevelField"] = True
    async with client_for(create_cds_app([service(handler)])) as client:
        reply = await client.post("/cds-services/svc", json=body)
    assert reply.status_code == 200, reply.text
    assert seen[0].context.model_dump()["appointmentId"] == "Appointment/1"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("context", "location"),
    [
        ({"userId": "Practitioner/1"}, ["context", "patientId"]),
        ({"userId": "Practitioner/1", "patientId": 12}, ["context", "patientId"]),
    ],
)
async def test_missing_required_context_fields_and_wrong_types_are_still_422(
    context: dict[str, Any], location: list[str]
) -> None:
    async with client_for(create_cds_app([service()])) as client:
        reply = await client.post("/cds-services/svc", json=new_body(context=context))
    assert reply.status_code == 422
    assert [error["loc"] for error in reply.json()["detail"]] == [location]


# --- Providing FHIR resources: prefetch -------------------------------------------------


@pytest.mark.parametrize(
    "hook", ["patient-view", "order-select", "order-sign", "encounter-discharge"]
)
def test_the_client_sends_the_advertised_prefetch_keyed_and_shaped_as_the_queries(
    hook: str,
) -> None:
    """Prefetch: the client fills each advertised key as the template's FHIR query would
    answer: a read gives the resource, a search a Bundle of type searchset."""
    use_case = ClinicalDecisionSupport()
    templates = use_case.default_prefetch(hook)
    assert not any("$" in template for template in templates.values())  # reads and searches
    data = CdsDataGenerator(workflow=hook).generate(random_seed=7)
    request = use_case.make_request(data, workflow=hook, prefetch=templates)

    assert request.prefetch is not None
    assert set(request.prefetch) == set(templates)
    patient_id = data.context["patientId"]
    patient = request.prefetch["patient"]
    assert isinstance(patient, Patient) and patient.id == patient_id
    if "encounter" in templates:
        encounter = request.prefetch["encounter"]
        assert isinstance(encounter, Encounter)
        assert encounter.id == data.context["encounterId"]
    conditions = request.prefetch["conditions"]
    assert isinstance(conditions, Bundle) and conditions.type == "searchset"
    expected = [
        r.id
        for r in models.iter_resources(data.prefetch, Condition)
        if r.subject.reference == f"Patient/{patient_id}"
    ]
    assert [entry.resource.id for entry in conditions.entry or ()] == expected
    assert conditions.total == len(expected) > 0


def test_a_read_the_data_cannot_answer_is_null() -> None:
    """Prefetch: "If the CDS Client has no data to populate a template prefetch key, the
    prefetch template key MUST have a value of null.\""""
    data = CdsDataGenerator(workflow="patient-view").generate(random_seed=1)
    request = data.to_request(
        "patient-view",
        prefetch_templates={
            "encounter": "Encounter/{{context.encounterId}}",  # no encounter in context
            "missing": "Patient/not-there",
        },
    )
    assert request.prefetch == {"encounter": None, "missing": None}
    body = request.model_dump(mode="json", exclude_none=True)
    assert body["prefetch"] == {"encounter": None, "missing": None}


def test_a_template_the_client_cannot_satisfy_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Prefetch: "The CDS Client MUST NOT include any prefetch template key that it
    chooses not to satisfy.\""""
    data = CdsDataGenerator(workflow="patient-view").generate(random_seed=1)
    request = data.to_request(
        "patient-view",
        prefetch_templates={
            "patient": "Patient/{{context.patientId}}",
            "valueSet": "Condition?code:in=http://example.org/vs",
            "badToken": "Practitioner/{{user.id}}",
        },
    )
    assert request.prefetch is not None and set(request.prefetch) == {"patient"}
    assert "'valueSet'" in caplog.text and "search parameter 'code:in'" in caplog.text
    assert "'badToken'" in caplog.text and "token {{user.id}}" in caplog.text


def test_token_searches_match_codes_with_or_without_their_system() -> None:
    """Prefetch query restrictions: "token search parameters using equality (e.g.
    code=4548-4)" and "the _count parameter to limit the number of results returned"."""
    data = CdsDataGenerator(workflow="encounter-discharge").generate(random_seed=5)
    conditions = list(models.iter_resources(data.prefetch, Condition))
    coding = conditions[0].code.coding[0]
    request = data.to_request(
        "encounter-discharge",
        prefetch_templates={
            "bare": "Condition?patient={{context.patientId}}&code=" + coding.code,
            "system": f"Condition?code={coding.system}|{coding.code}",
            "none": "Condition?code=not-a-code",
            "one": "Condition?patient={{context.patientId}}&_count=1",
        },
    )
    assert request.prefetch is not None
    found = {
        key: [entry.resource.id for entry in value.entry or ()]
        for key, value in request.prefetch.items()
    }
    expected = [c.id for c in conditions if any(x.code == coding.code for x in c.code.coding)]
    assert found["bare"] == found["system"] == expected
    assert found["none"] == []
    assert found["one"] == [conditions[0].id]


def test_a_sandbox_run_sends_the_prefetch_the_service_declared() -> None:
    seen: list[dict[str, Any]] = []

    @hc.sandbox(service_config={"port": 0})
    class Declared(ClinicalDecisionSupport):
        def __init__(self) -> None:
            self.data_generator = CdsDataGenerator()

        @hc.ehr(workflow="encounter-discharge")
        def load(self) -> CdsFhirData:
            return self.data_generator.generate(random_seed=3)

        @hc.api(
            prefetch={
                "who": "Patient/{{context.patientId}}",
                "meds": "MedicationRequest?patient={{context.patientId}}&status=active",
            }
        )
        def svc(self, request: CDSRequest) -> CDSResponse:
            seen.append(dict(request.prefetch or {}))
            return CDSResponse(cards=[])

    result = Declared().start_sandbox(save_data=False)
    result.raise_for_status()
    assert set(seen[0]) == {"who", "meds"}
    assert isinstance(seen[0]["who"], Patient)
    meds = seen[0]["meds"]
    assert isinstance(meds, Bundle) and meds.type == "searchset" and meds.entry
    assert {entry.resource.get_resource_type() for entry in meds.entry} == {"MedicationRequest"}


# --- CDS Service response: cards, suggestions, actions -----------------------------------


def test_the_spec_response_example_round_trips_unchanged() -> None:
    response = ClinicalDecisionSupport().parse_response(json.dumps(RESPONSE_EXAMPLE).encode())
    assert response.model_dump(mode="json", exclude_none=True) == RESPONSE_EXAMPLE


def test_the_spec_card_example_round_trips_unchanged() -> None:
    response = CDSResponse.model_validate({"cards": [CARD_EXAMPLE]})
    assert response.model_dump(mode="json", exclude_none=True) == {"cards": [CARD_EXAMPLE]}


def test_a_delete_action_takes_the_resource_id_as_a_string() -> None:
    """Action: "resourceId | CONDITIONAL | string | A relative reference to the relevant
    resource. SHOULD be provided when the type attribute is delete.\""""
    action = models.Action.model_validate(DELETE_ACTION_EXAMPLE)
    assert action.resourceId == "ServiceRequest/example-MRI-59879846"
    assert action.model_dump(mode="json") == DELETE_ACTION_EXAMPLE


def test_the_system_actions_example_round_trips() -> None:
    response = CDSResponse.model_validate(SYSTEM_ACTIONS_EXAMPLE)
    assert response.model_dump(mode="json", exclude_none=True) == SYSTEM_ACTIONS_EXAMPLE


@pytest.mark.parametrize(("length", "valid"), [(139, True), (140, False)])
def test_the_summary_is_shorter_than_140_characters(length: int, valid: bool) -> None:
    """Card: "summary | REQUIRED | string | One-sentence, <140-character summary message
    for display to the user inside of this card.\""""
    body = {**CARD_EXAMPLE, "summary": "x" * length}
    if valid:
        assert Card.model_validate(body).summary == "x" * length
    else:
        with pytest.raises(ValidationError, match="summary"):
            Card.model_validate(body)


def test_a_coding_needs_its_system() -> None:
    """Coding: "system | REQUIRED | string | The codesystem for this code.\""""
    body = copy.deepcopy(CARD_EXAMPLE)
    del body["source"]["topic"]["system"]
    with pytest.raises(ValidationError) as exc_info:
        Card.model_validate(body)
    assert [error["loc"] for error in exc_info.value.errors()] == [("source", "topic", "system")]


def test_an_override_reason_needs_a_display() -> None:
    """Coding: "display | CONDITIONAL | string | Short, human-readable label to display.
    REQUIRED for Override Reasons provided by the CDS Service, OPTIONAL for Topic.\""""
    body = copy.deepcopy(CARD_EXAMPLE)
    del body["overrideReasons"][1]["display"]
    with pytest.raises(ValidationError, match=r"overrideReasons\[1\] \(code '12354'\) needs"):
        Card.model_validate(body)
    del body["source"]["topic"]["display"]  # optional for a topic
    body["overrideReasons"][1]["display"] = "Contraindicated"
    Card.model_validate(body)


def test_extension_and_later_fields_are_kept_on_every_response_object() -> None:
    """Extensions are allowed on the response, Card, Source, Suggestion, Action and Link;
    the EHR client keeps them and tolerates fields a later version adds."""
    ext = {"com.example": {"x": 1}}
    card = copy.deepcopy(CARD_EXAMPLE)
    card["extension"] = ext
    card["source"]["extension"] = ext
    card["suggestions"][0]["extension"] = ext
    card["suggestions"][0]["actions"][0]["extension"] = ext
    card["links"][0]["extension"] = ext
    card["aFutureOptionalField"] = "kept"
    body = {"cards": [card], "extension": ext}
    response = ClinicalDecisionSupport().parse_response(json.dumps(body).encode())
    assert response.model_dump(mode="json", exclude_none=True) == body


@pytest.mark.anyio
async def test_no_element_on_the_wire_is_null_or_empty() -> None:
    """JSON: "JSON elements SHALL NOT be null or empty"; "cards" is REQUIRED, so an empty
    list of cards stays."""

    async def handler(request: CDSRequest) -> CDSResponse:
        return CDSResponse(
            cards=[
                Card(
                    summary="s",
                    indicator="info",
                    source={"label": "l", "url": None},
                    detail="",
                    suggestions=[],
                    links=[],
                    overrideReasons=[],
                    extension={},
                )
            ],
            systemActions=[],
        )

    async def empty(request: CDSRequest) -> CDSResponse:
        return CDSResponse(cards=[], systemActions=[])

    app = create_cds_app([service(handler), service(empty, id="empty")])
    async with client_for(app) as client:
        reply = await client.post("/cds-services/svc", json=new_body())
        nothing = await client.post("/cds-services/empty", json=new_body())
    assert reply.json() == {
        "cards": [{"summary": "s", "indicator": "info", "source": {"label": "l"}}]
    }
    assert nothing.json() == {"cards": []}


def test_requests_the_client_sends_have_no_null_or_empty_element() -> None:
    request = CDSRequest.model_validate(new_body(extension={}, prefetch={}))
    assert request.model_dump(mode="json") == new_body() | {
        "hookInstance": str(request.hookInstance)
    }


# --- HTTP status: 412 and errors ----------------------------------------------------------


@pytest.mark.anyio
async def test_a_handler_answers_412_when_the_data_it_needs_is_missing() -> None:
    """Prefetch: "If the CDS Service is unable to obtain required data because it cannot
    access the FHIR server and the request did not contain the necessary prefetch keys,
    the service SHALL respond with an HTTP 412 Precondition Failed status code.\""""

    async def needs_data(request: CDSRequest) -> CDSResponse:
        raise HTTPException(412, "prefetch 'patient' is missing and there is no fhirServer")

    async with client_for(create_cds_app([service(needs_data)])) as client:
        reply = await client.post("/cds-services/svc", json=new_body())
    assert reply.status_code == 412
    assert reply.json() == {"error": "prefetch 'patient' is missing and there is no fhirServer"}


@pytest.mark.anyio
async def test_another_handler_exception_is_a_500_that_does_not_echo_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leaks(request: CDSRequest) -> CDSResponse:
        raise RuntimeError("password=hunter2 at /srv/model.bin")

    async with client_for(create_cds_app([service(leaks)])) as client:
        reply = await client.post("/cds-services/svc", json=new_body())
    assert reply.status_code == 500
    assert "hunter2" not in reply.text and "RuntimeError" not in reply.text
    assert "hunter2" in caplog.text


def test_the_sandbox_still_records_why_the_handler_failed() -> None:
    @hc.sandbox(service_config={"port": 0})
    class Failing(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view", num=2)
        def load(self) -> CDSRequest:
            return CDSRequest.model_validate(new_body())

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            raise ValueError("model not loaded")

    result = Failing().start_sandbox(save_data=False)
    assert [o.error for o in result.outcomes] == [
        "HTTP 500: handler 'svc' raised ValueError: model not loaded"
    ] * 2


# --- Feedback ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "example",
    [FEEDBACK_ACCEPTED_EXAMPLE, FEEDBACK_OVERRIDDEN_EXAMPLE, FEEDBACK_OVERRIDE_REASON_EXAMPLE],
)
async def test_feedback_examples_are_answered_200_and_reach_the_handler(
    example: dict[str, Any],
) -> None:
    """Feedback: "POST {baseUrl}/cds-services/{service.id}/feedback" with the outcome of
    each card; the service answers 200."""
    received: list[Any] = []

    async def on_feedback(feedback: Any) -> None:
        received.append(feedback)

    app = create_cds_app([service(feedback=on_feedback)])
    async with client_for(app) as client:
        reply = await client.post("/cds-services/svc/feedback", json=example)
    assert reply.status_code == 200
    assert isinstance(received[0], models.CDSFeedback)
    assert received[0].model_dump(mode="json") == example


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("item", "location"),
    [
        ({"outcome": "accepted"}, ["feedback", 0]),  # acceptedSuggestions required
        ({"outcome": "ignored"}, ["feedback", 0, "outcome"]),
        ({"outcomeTimestamp": "yesterday"}, ["feedback", 0, "outcomeTimestamp"]),
    ],
)
async def test_bad_feedback_is_422_naming_the_field(
    item: dict[str, Any], location: list[Any]
) -> None:
    body = copy.deepcopy(FEEDBACK_ACCEPTED_EXAMPLE)
    body["feedback"][0].update(item)
    if item.get("outcome") == "accepted":
        del body["feedback"][0]["acceptedSuggestions"]
    async with client_for(create_cds_app([service()])) as client:
        reply = await client.post("/cds-services/svc/feedback", json=body)
    assert reply.status_code == 422
    assert [error["loc"] for error in reply.json()["detail"]] == [location]


@pytest.mark.anyio
async def test_a_failing_feedback_handler_keeps_its_http_status_or_is_a_non_echoing_500() -> None:
    async def conflict(feedback: Any) -> None:
        raise HTTPException(409, "card already resolved")

    async def leaks(feedback: Any) -> None:
        raise RuntimeError("secret=hunter2")

    app = create_cds_app([service(feedback=conflict), service(id="leaky", feedback=leaks)])
    async with client_for(app) as client:
        chosen = await client.post("/cds-services/svc/feedback", json=FEEDBACK_ACCEPTED_EXAMPLE)
        failed = await client.post("/cds-services/leaky/feedback", json=FEEDBACK_ACCEPTED_EXAMPLE)
        unknown = await client.post("/cds-services/nope/feedback", json=FEEDBACK_ACCEPTED_EXAMPLE)
    assert (chosen.status_code, chosen.json()) == (409, {"error": "card already resolved"})
    assert failed.status_code == 500 and "hunter2" not in failed.text
    assert unknown.status_code == 404


def test_feedback_received_in_a_tracked_run_is_counted_by_outcome(any_storage: Storage) -> None:
    port = free_port()
    handled: list[int] = []

    @hc.sandbox(
        experiment_config={"storage_uri": any_storage.uri, "project_name": "feedback"},
        service_config={"port": port},
    )
    class WithFeedback(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view", num=2)
        def load(self) -> CDSRequest:
            # The EHR posts the outcome of earlier cards while the run is going.
            url = f"http://127.0.0.1:{port}/cds-services/svc/feedback"
            with httpx.Client(trust_env=False) as client:
                for example in (FEEDBACK_ACCEPTED_EXAMPLE, FEEDBACK_OVERRIDE_REASON_EXAMPLE):
                    assert client.post(url, json=example).status_code == 200
            return CDSRequest.model_validate(new_body())

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

        @hc.feedback
        def take(self, feedback: models.CDSFeedback) -> None:
            handled.append(len(feedback.feedback))

    with WithFeedback() as use_case:
        result = use_case.start_sandbox(save_data=False)
    result.raise_for_status()
    assert result.feedback == {"accepted": 2, "overridden": 2}
    assert handled == [1, 1, 1, 1]


# --- CORS --------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/cds-services", "GET"),
        ("/cds-services/svc", "POST"),
        ("/cds-services/svc/feedback", "POST"),
    ],
)
async def test_browser_preflights_are_answered_on_every_endpoint(path: str, method: str) -> None:
    headers = {
        "Origin": "https://sandbox.cds-hooks.org",
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with client_for(create_cds_app([service()])) as client:
        preflight = await client.options(path, headers=headers)
        actual = await client.get(path, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert method in preflight.headers["access-control-allow-methods"]
    assert actual.headers["access-control-allow-origin"] == "*"


@pytest.mark.anyio
async def test_allowed_origins_are_configurable() -> None:
    app = create_cds_app([service()], cors_origins=["https://ehr.example.org"])
    preflight = {"Access-Control-Request-Method": "POST"}
    async with client_for(app) as client:
        allowed = await client.options(
            "/cds-services/svc", headers={"Origin": "https://ehr.example.org", **preflight}
        )
        refused = await client.options(
            "/cds-services/svc", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://ehr.example.org"
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("origins", ["https://ehr.example.org", [], [""], ["https://a.org", 3]])
def test_bad_cors_origins_are_a_config_error(origins: Any) -> None:
    with pytest.raises(SandboxConfigError, match=r"\['cors_origins'\] must be a list of origins"):
        hc.sandbox(service_config={"cors_origins": origins})


# --- Security: JWT bearer tokens ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_service_that_requires_a_token_answers_401_without_one() -> None:
    from healthchain.use_cases import generate_key_pair

    _, verifier = generate_key_pair()
    app = create_cds_app([service()], verifier=verifier)
    async with client_for(app) as client:
        missing = await client.post("/cds-services/svc", json=new_body())
        garbage = await client.post(
            "/cds-services/svc", json=new_body(), headers={"Authorization": "Bearer x.y.z"}
        )
        feedback = await client.post("/cds-services/svc/feedback", json=FEEDBACK_ACCEPTED_EXAMPLE)
        discovery = await client.get("/cds-services")
    statuses = {missing.status_code, garbage.status_code, feedback.status_code}
    assert statuses == {discovery.status_code} == {401}
    assert missing.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_the_client_token_carries_the_spec_claims_and_is_verified() -> None:
    """Trusting CDS Clients: header alg, kid, typ "JWT"; claims iss, aud ("this value MUST
    be the URL of the CDS Service endpoint being invoked"), exp, iat, jti ("A nonce string
    value that uniquely identifies this authentication JWT (used to protect against replay
    attacks)"), tenant OPTIONAL; "both ES384 and RS384 are RECOMMENDED"."""
    from healthchain.use_cases import JwtSigner, JwtVerifier, generate_key_pair

    signer, verifier = generate_key_pair(issuer="https://ehr.example.org")
    audience = "http://cds/cds-services/svc"
    token = signer.token(audience)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "exp", "iat", "jti"}
    assert claims["iss"] == "https://ehr.example.org" and claims["aud"] == audience
    assert 0 < claims["exp"] - claims["iat"] <= 300
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES384" and header["typ"] == "JWT" and header["kid"]

    other_signer, _ = generate_key_pair(issuer="https://ehr.example.org")
    app = create_cds_app([service()], verifier=verifier)
    async with client_for(app) as client:

        async def call(token: str) -> httpx.Response:
            return await client.post(
                "/cds-services/svc", json=new_body(), headers={"Authorization": f"Bearer {token}"}
            )

        ok = await call(token)
        replayed = await call(token)
        wrong_audience = await call(signer.token("http://cds/cds-services/other"))
        forged = await call(other_signer.token(audience))
    assert ok.status_code == 200
    assert replayed.status_code == 401 and "already used" in replayed.json()["error"]
    assert wrong_audience.status_code == 401 and "Audience" in wrong_audience.json()["error"]
    assert forged.status_code == 401 and "Signature" in forged.json()["error"]

    key = ec.generate_private_key(ec.SECP384R1())
    with_tenant = JwtSigner(key, issuer="https://ehr.example.org", key_id="k1", tenant="hospital-1")
    tenant_token = with_tenant.token(audience)
    assert (
        JwtVerifier({"https://ehr.example.org": key.public_key()}).verify(
            tenant_token, audience=audience
        )
        is None
    )
    assert jwt.decode(tenant_token, options={"verify_signature": False})["tenant"] == "hospital-1"
    with pytest.raises(ValueError, match="at least one trusted issuer"):
        JwtVerifier({})
    assert time.time() < claims["exp"]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_jwt_in_service_config_is_true_or_false(value: Any) -> None:
    with pytest.raises(SandboxConfigError, match=r"\['jwt'\] must be True or False"):
        hc.sandbox(service_config={"jwt": value})


def test_a_sandbox_run_with_jwt_signs_every_call_and_the_service_checks_it() -> None:
    @hc.sandbox(service_config={"port": 0, "jwt": True})
    class Signed(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view", num=3)
        def load(self) -> CDSRequest:
            return CDSRequest.model_validate(new_body())

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

    result = Signed().start_sandbox(save_data=False)
    result.raise_for_status()
    assert [o.status_code for o in result.outcomes] == [200, 200, 200]


@pytest.mark.anyio
async def test_with_jwt_on_the_sandbox_service_refuses_unsigned_calls() -> None:
    @hc.sandbox(service_config={"port": 0, "jwt": True})
    class Signed(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view")
        def load(self) -> CDSRequest:
            return CDSRequest.model_validate(new_body())

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

    from healthchain.sandbox._plan import make_plan

    plan = make_plan(Signed(), None, ServiceConfig(jwt=True))
    assert plan.bearer_token is not None
    async with client_for(plan.app) as client:
        unsigned = await client.post("/cds-services/svc", json=new_body())
        signed = await client.post(
            "/cds-services/svc",
            json=new_body(),
            headers={"Authorization": f"Bearer {plan.bearer_token('http://cds/cds-services/svc')}"},
        )
        discovery = await client.get(
            "/cds-services",
            headers={"Authorization": f"Bearer {plan.bearer_token('http://cds/cds-services')}"},
        )
    assert unsigned.status_code == 401
    assert signed.status_code == 200
    assert discovery.status_code == 200


@pytest.mark.anyio
async def test_unsigned_symmetric_and_untrusted_tokens_are_refused() -> None:
    """JWT Signing Algorithm: "JWTs SHALL NOT be signed used the none algorithm" and "SHALL
    NOT be signed using any symmetric algorithm"; "CDS Services SHOULD maintain an
    allowlist of the iss and jku fields to only the CDS Clients they trust"."""
    from healthchain.use_cases import generate_key_pair

    signer, verifier = generate_key_pair(issuer="https://ehr.example.org")
    stranger, _ = generate_key_pair(issuer="https://stranger.example")
    audience = "http://cds/cds-services/svc"
    now = int(time.time())
    claims = {
        "iss": "https://ehr.example.org",
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    symmetric = jwt.encode(claims, "s" * 48, algorithm="HS384")
    assert verifier.verify(signer.token(audience), audience=audience) is None
    for token in (unsigned, symmetric):
        problem = verifier.verify(token, audience=audience)
        assert problem is not None and "algorithm" in problem.lower()
    assert verifier.verify(stranger.token(audience), audience=audience) == (
        "issuer 'https://stranger.example' is not trusted by this service"
    )


def test_the_replay_memory_is_bounded_and_forgets_expired_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every cache has a bound: a verifier remembers at most MAX_REMEMBERED unexpired
    token ids, refuses new tokens past it (forgetting one would allow its replay), and
    forgets ids once their tokens have expired."""
    import time
    from types import SimpleNamespace

    from healthchain.use_cases import _jwt, generate_key_pair

    monkeypatch.setattr(_jwt, "MAX_REMEMBERED", 3)
    signer, verifier = generate_key_pair()
    audience = "http://cds/cds-services/svc"
    assert [verifier.verify(signer.token(audience), audience=audience) for _ in range(3)] == [
        None
    ] * 3
    refused = verifier.verify(signer.token(audience), audience=audience)
    assert refused is not None and "more than 3 unexpired tokens" in refused

    # The verifier's clock moves past every token's expiry (PyJWT's checks, and the
    # signer of the token made first, keep the real one).
    fresh = signer.token(audience)
    later = time.time() + _jwt.MAX_LIFETIME + 60
    monkeypatch.setattr(_jwt, "time", SimpleNamespace(time=lambda: later))
    assert verifier.verify(fresh, audience=audience) is None
    assert len(verifier._seen) == 1
