"""Use cases the sandbox tests run, and running them (imported by tests/test_sandbox*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from healthchain.models import Card, CDSRequest, CDSResponse
from healthchain.sandbox import SandboxResult, api, ehr, sandbox
from healthchain.use_cases import BaseUseCase, ClinicalDecisionSupport

CONTEXT = {"userId": "Practitioner/1", "patientId": "Patient/1"}


def card(summary: str = "All good") -> Card:
    return Card(summary=summary, indicator="info", source={"label": "sandbox tests"})


def new_request(hook: str = "patient-view") -> CDSRequest:
    return CDSRequest.model_validate(
        {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": CONTEXT}
    )


def define(
    handler: Callable[..., Any],
    load: Callable[..., Any],
    *,
    storage_uri: str | None,
    num: int = 3,
    workflow: str = "patient-view",
    tags: Mapping[str, Any] | None = None,
    service: Mapping[str, Any] | None = None,
    name: str = "Case",
    extra: Mapping[str, Any] | None = None,
    experiment: Mapping[str, Any] | None = None,
) -> type[ClinicalDecisionSupport]:
    """A ClinicalDecisionSupport with ``handler`` as @api and ``load`` as @ehr."""
    namespace = {
        "svc": api(handler),
        "load": ehr(workflow=workflow, num=num)(load),
        **(extra or {}),
    }
    cls = type(name, (ClinicalDecisionSupport,), namespace)
    experiment_config = None
    if storage_uri is not None:
        experiment_config = {"storage_uri": storage_uri, "project_name": "sandbox-tests"}
        if tags is not None:
            experiment_config["tags"] = dict(tags)
        experiment_config.update(experiment or {})
    return sandbox(
        experiment_config=experiment_config, service_config={"port": 0, **(service or {})}
    )(cls)


async def async_ok(self: Any, request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[card(f"async {request.hook}")])


def sync_ok(self: Any, request: CDSRequest) -> CDSResponse:
    return CDSResponse(cards=[card(f"sync {request.hook}")])


def load_sync(self: Any) -> CDSRequest:
    return new_request()


async def load_async(self: Any) -> CDSRequest:
    return new_request()


def run(cls: type[BaseUseCase], **options: Any) -> tuple[SandboxResult, Any]:
    """Start the sandbox; return the result and the experiment it recorded (or None)."""
    options.setdefault("save_data", False)
    with cls() as use_case:
        result = use_case.start_sandbox(**options)
        tracker = use_case.experiment_tracker
        experiment = None
        if tracker is not None and result.experiment_id is not None:
            experiment = tracker.get_experiment(result.experiment_id)
    return result, experiment
