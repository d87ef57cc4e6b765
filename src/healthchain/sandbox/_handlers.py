"""Finding the ``@api`` handler and ``@ehr`` method a use case class defines."""

from __future__ import annotations

from dataclasses import dataclass

from healthchain.use_cases import BaseUseCase

from ._exceptions import SandboxDefinitionError

__all__ = ["API_MARK", "EHR_MARK", "EhrSpec", "Handlers", "find_handlers", "mark"]

API_MARK = "__healthchain_api__"
EHR_MARK = "__healthchain_ehr__"


@dataclass(frozen=True, slots=True)
class EhrSpec:
    """What ``@ehr`` records on the method it marks."""

    workflow: str
    """The workflow (CDS hook) the generated requests are for."""
    num: int
    """How many requests one sandbox run sends."""


@dataclass(frozen=True, slots=True)
class Handlers:
    """The attribute names of a use case's ``@api`` handler and ``@ehr`` method."""

    api: str | None
    ehr: str | None
    ehr_spec: EhrSpec | None


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
    """Find the ``@api`` handler and ``@ehr`` method along ``cls``'s MRO.

    A second one of either kind is a :class:`SandboxDefinitionError` naming both.
    """
    seen: set[str] = set()
    apis: list[str] = []
    ehrs: list[tuple[str, EhrSpec]] = []
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if getattr(value, API_MARK, False) is True:
                apis.append(name)
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
    ehr_name, ehr_spec = ehrs[0] if ehrs else (None, None)
    return Handlers(api=apis[0] if apis else None, ehr=ehr_name, ehr_spec=ehr_spec)
