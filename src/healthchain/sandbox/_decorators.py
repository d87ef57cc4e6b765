"""``@sandbox``, ``@api``, ``@ehr``, ``@feedback`` and ``@score``: marking a use case's
service handler, EHR data method, feedback handler and scorers."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from healthchain.use_cases import BaseUseCase

from ._config import ExperimentConfig, ServiceConfig
from ._entry import SandboxSpec, install
from ._exceptions import SandboxConfigError, SandboxDefinitionError
from ._handlers import (
    API_MARK,
    API_SPEC,
    EHR_MARK,
    FEEDBACK_MARK,
    SCORE_MARK,
    ApiSpec,
    EhrSpec,
    find_handlers,
    mark,
)

__all__ = ["api", "ehr", "feedback", "sandbox", "score"]

P = ParamSpec("P")
R = TypeVar("R")
U = TypeVar("U", bound=BaseUseCase)


@overload
def api(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def api(
    func: None = None,
    /,
    *,
    title: str | None = None,
    description: str | None = None,
    usage_requirements: str | None = None,
    prefetch: Mapping[str, str] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def api(
    func: Callable[P, R] | None = None,
    /,
    *,
    title: str | None = None,
    description: str | None = None,
    usage_requirements: str | None = None,
    prefetch: Mapping[str, str] | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark the service handler: it takes the request and returns the response.

    ``def`` or ``async def`` (also behind ``functools.partial`` or an object's
    ``__call__``, which are called without ``self``); a sync handler runs in a worker
    thread, an async one on the sandbox's event loop. Bare (``@api``), or with what CDS
    Hooks discovery advertises (``@api(title=...)``).

    Args:
        func: The handler, when used bare.
        title: Service title; default: the handler's name, e.g. "My service".
        description: Default: the handler's docstring's first line.
        usage_requirements: Free text on what the service needs; default: none.
        prefetch: Prefetch templates by key, e.g.
            ``{"patient": "Patient/{{context.patientId}}"}``; default: the use case's
            for the workflow. The EHR client fills each from the ``@ehr`` method's data.

    Raises:
        SandboxConfigError: An option is empty or not a string (a mapping of non-empty
            strings for ``prefetch``).
        SandboxDefinitionError: What it decorates is not callable.
    """
    spec = ApiSpec(
        title=_optional_text("title", title),
        description=_optional_text("description", description),
        usage_requirements=_optional_text("usage_requirements", usage_requirements),
        prefetch=_templates(prefetch),
    )

    def decorate(handler: Callable[P, R]) -> Callable[P, R]:
        _mark_callable("api", handler, API_MARK, True)
        if spec != ApiSpec():
            mark(handler, API_SPEC, spec)
        return handler

    if func is not None:
        return decorate(func)
    return decorate


def feedback(func: Callable[P, R]) -> Callable[P, R]:
    """Mark the feedback handler: it takes the ``CDSFeedback`` the EHR posts to
    ``/cds-services/{id}/feedback`` (which cards were accepted or overridden).

    Optional: without one, feedback is accepted (200) and, in a tracked run, counted.
    ``def`` or ``async def``, like ``@api``.

    Raises:
        SandboxDefinitionError: What it decorates is not callable.
    """
    return _mark_callable("feedback", func, FEEDBACK_MARK, True)


def score(func: Callable[P, R]) -> Callable[P, R]:
    """Mark a scorer: called with ``(request, response)`` for each valid response of a run.

    It returns a number (a score named after the method) or a mapping of score names to
    numbers. Each request's scores are stored with its request record, and the run logs
    each score's mean as a metric. A scorer that raises, or returns anything else, fails
    the run. ``def`` or ``async def``, like ``@api``; scorers run after the response is
    taken, so they never delay the service's answers. A use case may have several.

    Raises:
        SandboxDefinitionError: What it decorates is not callable.
    """
    return _mark_callable("score", func, SCORE_MARK, True)


def _mark_callable(
    decorator: str, func: Callable[P, R], name: str, value: object
) -> Callable[P, R]:
    """``func`` with ``name`` set to ``value``, if ``@decorator`` can mark it."""
    if not callable(func):
        raise SandboxDefinitionError(f"@{decorator} marks a function or method, got {func!r}")
    mark(func, name, value)
    return func


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SandboxConfigError(f"@api({name}=...) must be a non-empty string, got {value!r}")
    return value


def _templates(prefetch: object) -> Mapping[str, str] | None:
    if prefetch is None:
        return None
    if not isinstance(prefetch, Mapping) or not all(
        isinstance(key, str) and key and isinstance(template, str) and template
        for key, template in prefetch.items()
    ):
        raise SandboxConfigError(
            "@api(prefetch=...) maps prefetch keys to FHIR query templates, e.g. "
            f"{{'patient': 'Patient/{{{{context.patientId}}}}'}}, got {prefetch!r}"
        )
    return dict(prefetch)


def ehr(
    func: object = None, /, *, workflow: str | None = None, num: int = 1
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark the EHR client's data method: called ``num`` times per run, each result is
    sent as one request for ``workflow``.

    The method returns a ``CdsFhirData`` (or a ready ``CDSRequest``); ``def`` or
    ``async def``. Use it as ``@ehr(workflow="patient-view", num=10)``.

    Args:
        func: Not used: ``@ehr`` needs a workflow, so bare ``@ehr`` is an error.
        workflow: A workflow the use case supports: for ``ClinicalDecisionSupport``,
            ``"patient-view"``, ``"order-select"``, ``"order-sign"`` or
            ``"encounter-discharge"`` (checked when ``@sandbox`` is applied).
        num: Requests per run, an integer of at least 1. Default 1.

    Raises:
        SandboxConfigError: Bare ``@ehr``, a missing workflow or a bad ``num``.
        SandboxDefinitionError: What it decorates is not callable.
    """
    if func is not None:
        raise SandboxConfigError(
            "@ehr needs a workflow: write @ehr(workflow='patient-view') "
            "(or another workflow the use case supports)"
        )
    if not isinstance(workflow, str) or not workflow:
        raise SandboxConfigError(
            f"@ehr(workflow=...) must name a workflow such as 'patient-view', got {workflow!r}"
        )
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise SandboxConfigError(
            f"@ehr(num=...) is the number of requests to send and must be an integer "
            f"of at least 1, got {num!r}"
        )
    spec = EhrSpec(workflow=workflow, num=num)

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        return _mark_callable("ehr", method, EHR_MARK, spec)

    return decorate


@overload
def sandbox(cls: type[U], /) -> type[U]: ...


@overload
def sandbox(
    cls: None = None,
    /,
    *,
    experiment_config: Mapping[str, Any] | None = None,
    service_config: Mapping[str, Any] | None = None,
) -> Callable[[type[U]], type[U]]: ...


def sandbox(
    cls: type[U] | None = None,
    /,
    *,
    experiment_config: Mapping[str, Any] | None = None,
    service_config: Mapping[str, Any] | None = None,
) -> type[U] | Callable[[type[U]], type[U]]:
    """Make a use case runnable with ``start_sandbox()``; bare or with options.

    Args:
        cls: The ``BaseUseCase`` subclass, when used bare (``@sandbox``).
        experiment_config: Turns experiment tracking on; keys (see
            :class:`ExperimentConfig`): ``storage_uri`` (``"sqlite:///experiments.db"``),
            ``project_name`` (``"healthchain"``), ``tags`` (None),
            ``heartbeat_interval`` (10 s; 0.05 to 86,400), ``outage_timeout`` (60 s;
            0.1 to 604,800) and ``max_queued_writes`` (100,000; 1 to 10,000,000).
            ``self.experiment_tracker`` is then an
            :class:`~healthchain.tracking.ExperimentTracker`, set before ``__init__``
            runs. Default None: not tracked.
        service_config: Keys (see :class:`ServiceConfig`): ``host``
            (``"127.0.0.1"``), ``port`` (8000; 0 picks a free one), ``timeout``
            (seconds per request, 30; 0.001 to 86,400), ``max_concurrency``
            (requests in flight, 1; 1 to 256), ``cors_origins`` (``["*"]``) and ``jwt``
            (False).

    Raises:
        SandboxConfigError: An unknown key or a bad value in either config, named; an
            ``@ehr`` workflow the use case does not support.
        SandboxDefinitionError: The class is not a ``BaseUseCase`` subclass.
    """
    experiment = (
        ExperimentConfig.from_mapping(experiment_config) if experiment_config is not None else None
    )
    service = ServiceConfig.from_mapping(service_config or {})

    def decorate(target: type[U]) -> type[U]:
        if not isinstance(target, type) or not issubclass(target, BaseUseCase):
            raise SandboxDefinitionError(
                f"@sandbox decorates a BaseUseCase subclass (such as a "
                f"ClinicalDecisionSupport), got {target!r}"
            )
        handlers = find_handlers(target)
        if handlers.ehr_spec is not None:
            _check_workflow(target, handlers.ehr_spec.workflow)
        install(target, SandboxSpec(experiment, service))
        return target

    if cls is not None:
        return decorate(cls)
    return decorate


def _check_workflow(cls: type[BaseUseCase], workflow: str) -> None:
    supported = sorted(str(name) for name in cls.supported_workflows)
    if workflow in supported:
        return
    if not supported:
        raise SandboxConfigError(
            f"@ehr(workflow={workflow!r}): {cls.__name__} supports no workflows; derive it "
            "from a concrete use case such as ClinicalDecisionSupport"
        )
    near = difflib.get_close_matches(workflow, supported, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise SandboxConfigError(
        f"@ehr(workflow={workflow!r}): {cls.__name__} does not support that "
        f"workflow{hint} (supported: {', '.join(map(repr, supported))})"
    )
