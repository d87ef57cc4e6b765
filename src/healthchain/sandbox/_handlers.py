"""Finding the ``@api`` handler, ``@ehr`` method, ``@feedback`` handler and ``@score``
methods a use case defines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from healthchain.use_cases import BaseUseCase

from ._exceptions import SandboxDefinitionError
from ._run_metrics import AUTOMATIC_METRICS

__all__ = [
    "API_MARK",
    "API_SPEC",
    "EHR_MARK",
    "FEEDBACK_MARK",
    "SCORE_MARK",
    "ApiSpec",
    "EhrSpec",
    "Handlers",
    "find_handlers",
    "mark",
]

API_MARK = "__healthchain_api__"
API_SPEC = "__healthchain_api_spec__"
EHR_MARK = "__healthchain_ehr__"
FEEDBACK_MARK = "__healthchain_feedback__"
SCORE_MARK = "__healthchain_score__"


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """What ``@api(...)`` declares about the service, for CDS Hooks discovery."""

    title: str | None = None
    """Title in discovery; None: made from the handler's name."""
    description: str | None = None
    """Description in discovery; None: the first line of the handler's docstring."""
    usage_requirements: str | None = None
    """``usageRequirements`` in discovery."""
    prefetch: Mapping[str, str] | None = None
    """Prefetch templates by key; None: the use case's defaults for the workflow."""


@dataclass(frozen=True, slots=True)
class EhrSpec:
    """What ``@ehr`` records on the method it marks."""

    workflow: str
    """The workflow (CDS hook) the generated requests are for."""
    num: int
    """How many requests one sandbox run sends."""


@dataclass(frozen=True, slots=True)
class Handlers:
    """The attribute names of a use case's ``@api`` handler, ``@ehr`` method, ``@feedback``
    handler and ``@score`` methods."""

    api: str | None
    ehr: str | None
    ehr_spec: EhrSpec | None
    feedback: str | None = None
    api_spec: ApiSpec = ApiSpec()
    scores: tuple[str, ...] = ()
    """The ``@score`` methods, base classes' first, each in definition order."""


def mark(func: object, name: str, value: object) -> None:
    """Set attribute ``name`` of ``func`` to ``value``."""
    try:
        setattr(func, name, value)
    except AttributeError as exc:
        raise SandboxDefinitionError(
            f"cannot mark {func!r}; decorate a function, method, functools.partial "
            "or callable object"
        ) from exc


def find_handlers(cls: type[BaseUseCase]) -> Handlers:
    """Find the ``@api`` handler, ``@ehr`` method, ``@feedback`` handler and ``@score``
    methods along the MRO.

    A second handler, ``@ehr`` or ``@feedback`` is a :class:`SandboxDefinitionError`
    naming both; there may be any number of scorers.
    """
    seen: set[str] = set()
    apis: list[str] = []
    ehrs: list[tuple[str, EhrSpec]] = []
    feedbacks: list[str] = []
    scores: list[list[str]] = []
    api_spec = ApiSpec()
    for klass in cls.__mro__:
        scores.append([])
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if getattr(value, SCORE_MARK, False) is True:
                scores[-1].append(name)
            if getattr(value, API_MARK, False) is True:
                apis.append(name)
                declared = getattr(value, API_SPEC, None)
                if isinstance(declared, ApiSpec) and len(apis) == 1:
                    api_spec = declared
            if getattr(value, FEEDBACK_MARK, False) is True:
                feedbacks.append(name)
            spec = getattr(value, EHR_MARK, None)
            if isinstance(spec, EhrSpec):
                ehrs.append((name, spec))
    if len(apis) > 1:
        raise SandboxDefinitionError(
            f"{cls.__name__} has more than one @api handler ({', '.join(map(repr, apis))}); "
            "a sandbox serves exactly one"
        )
    if len(ehrs) > 1:
        names = ", ".join(repr(name) for name, _ in ehrs)
        raise SandboxDefinitionError(
            f"{cls.__name__} has more than one @ehr method ({names}); "
            "a sandbox's client calls exactly one"
        )
    if len(feedbacks) > 1:
        raise SandboxDefinitionError(
            f"{cls.__name__} has more than one @feedback handler "
            f"({', '.join(map(repr, feedbacks))}); a service has one feedback endpoint"
        )
    taken = [name for names in scores for name in names if name in AUTOMATIC_METRICS]
    if taken:
        raise SandboxDefinitionError(
            f"{cls.__name__}: the @score method {taken[0]!r} has the name of one of the "
            f"metrics every run logs ({', '.join(AUTOMATIC_METRICS)}); rename it"
        )
    ehr_name, ehr_spec = ehrs[0] if ehrs else (None, None)
    return Handlers(
        api=apis[0] if apis else None,
        ehr=ehr_name,
        ehr_spec=ehr_spec,
        feedback=feedbacks[0] if feedbacks else None,
        api_spec=api_spec,
        scores=tuple(name for names in reversed(scores) for name in names),
    )
