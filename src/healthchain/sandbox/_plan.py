"""``Plan``: everything a run needs, resolved from the use case before anything starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from healthchain._callables import is_async_callable, member
from healthchain.pipeline import Pipeline
from healthchain.use_cases import BaseUseCase, Service

from ._config import ServiceConfig
from ._exceptions import SandboxDefinitionError
from ._handlers import find_handlers
from ._scoring import Scorer
from ._service_log import ServiceLog, counting_feedback, recording_errors
from ._threads import as_async

__all__ = ["Plan", "make_plan"]


@dataclass(slots=True)
class Plan:
    """Everything a run needs, resolved before anything is started or written."""

    use_case: BaseUseCase
    name: str
    service: Service
    app: Any
    path: str
    ehr_name: str
    workflow: str
    num: int
    pipeline_config: dict[str, Any] | None
    components: list[Mapping[str, Any]] | None
    loop_code: str
    """The user's code that runs on the event loop, named in a blocked-loop error."""
    log: ServiceLog
    bearer_token: Callable[[str], str] | None
    scorers: tuple[Scorer, ...] = ()
    """The ``@score`` methods, bound to the use case."""


def make_plan(use_case: BaseUseCase, service_id: str | None, config: ServiceConfig) -> Plan:
    cls = type(use_case)
    handlers = find_handlers(cls)
    if handlers.api is None:
        raise SandboxDefinitionError(
            f"{cls.__name__} has no @api handler; mark the method that answers requests "
            "with @healthchain.api"
        )
    if handlers.ehr is None or handlers.ehr_spec is None:
        raise SandboxDefinitionError(
            f"{cls.__name__} has no @ehr method; mark the method that returns the EHR's "
            "data with @healthchain.ehr(workflow=...)"
        )
    workflow = handlers.ehr_spec.workflow
    handler = member(use_case, handlers.api)
    spec = handlers.api_spec
    doc = (getattr(handler, "__doc__", None) or "").strip()
    log = ServiceLog()
    feedback = member(use_case, handlers.feedback) if handlers.feedback else None
    service = Service(
        id=service_id or handlers.api,
        hook=workflow,
        handler=recording_errors(as_async(handler), handlers.api, log),
        name=handlers.api,
        title=spec.title or handlers.api.replace("_", " ").strip().capitalize() or handlers.api,
        description=spec.description
        or (doc.splitlines()[0] if doc else f"{cls.__name__} on {workflow}"),
        prefetch=spec.prefetch
        if spec.prefetch is not None
        else use_case.default_prefetch(workflow),
        usage_requirements=spec.usage_requirements,
        feedback=counting_feedback(as_async(feedback) if feedback else None, log),
    )
    bearer_token: Callable[[str], str] | None = None
    verifier = None
    if config.jwt:
        from healthchain.use_cases import generate_key_pair  # loads the JWT stack on use

        signer, verifier = generate_key_pair()
        bearer_token = signer.token
    try:
        app = use_case.build_app(service, cors_origins=config.cors_origins, verifier=verifier)
        path = use_case.service_path(service.id)
    except NotImplementedError as exc:
        raise SandboxDefinitionError(str(exc)) from exc

    scorers = tuple(Scorer.of(use_case, name) for name in handlers.scores)
    on_loop = [
        f"the async {kind} {name!r}"
        for kind, name in (("@api handler", handlers.api), ("@ehr method", handlers.ehr))
        if is_async_callable(member(use_case, name))
    ] + [f"the async @score method {scorer.name!r}" for scorer in scorers if scorer.on_loop]
    pipeline = getattr(use_case, "pipeline", None)
    pipeline_config: dict[str, Any] | None = None
    components: list[Mapping[str, Any]] | None = None
    if isinstance(pipeline, Pipeline):
        pipeline_config = pipeline.config
        components = list(pipeline.tracked_components())
    return Plan(
        use_case=use_case,
        name=cls.__name__,
        service=service,
        app=app,
        path=path,
        ehr_name=handlers.ehr,
        workflow=workflow,
        num=handlers.ehr_spec.num,
        pipeline_config=pipeline_config,
        components=components,
        loop_code=" or ".join(on_loop) or "async code on the sandbox's event loop",
        log=log,
        bearer_token=bearer_token,
        scorers=scorers,
    )
