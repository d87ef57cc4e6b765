"""Filling CDS Hooks prefetch templates from an EHR's data, as its FHIR server would.

A template is a FHIR read (``Patient/{{context.patientId}}``: the resource) or search
(``Condition?patient={{context.patientId}}``: a ``searchset`` Bundle), with
``{{context.<field>}}`` tokens taken from the hook's context. Data the EHR does not have
gives ``None`` (the spec: "the CDS Client SHALL" send null for a prefetch key it has no
data for rather than an empty Bundle, since a read has no empty form). An operation such
as ``Patient/{{context.patientId}}/$everything`` gives every resource, as a searchset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

__all__ = ["fill_prefetch"]

_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def fill_prefetch(
    templates: Mapping[str, str], context: Mapping[str, Any], bundle: Bundle
) -> dict[str, Resource | None]:
    """Answer each template from ``bundle``; ``ValueError`` names a template it cannot."""
    resources = [entry.resource for entry in bundle.entry or () if entry.resource is not None]
    filled: dict[str, Resource | None] = {}
    for key, template in templates.items():
        query = _substitute(template, context)
        filled[key] = None if query is None else _answer(template, query, resources)
    return filled


def _substitute(template: str, context: Mapping[str, Any]) -> str | None:
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        path = match.group(1)
        name = path.removeprefix("context.")
        if name == path or not name:
            raise ValueError(
                f"prefetch template {template!r}: token {{{{{path}}}}} is not supported; "
                "use {{context.<field>}}, e.g. {{context.patientId}}"
            )
        found = context.get(name)
        if found is None:
            missing = True  # e.g. encounterId in a patient-view: nothing to fetch
            return ""
        if not isinstance(found, str):
            raise ValueError(
                f"prefetch template {template!r}: context field {name!r} is not a string"
            )
        return found

    query = _TOKEN.sub(value, template)
    return None if missing else query


def _answer(template: str, query: str, resources: list[Resource]) -> Resource | None:
    path, _, search = query.partition("?")
    parts = [part for part in path.strip("/").split("/") if part]
    if parts and parts[-1].startswith("$"):
        return _searchset(resources)
    if len(parts) == 2 and not search:
        kind, ident = parts
        return next((r for r in resources if r.get_resource_type() == kind and r.id == ident), None)
    if len(parts) == 1:
        kind = parts[0]
        matches = [r for r in resources if r.get_resource_type() == kind]
        count: int | None = None
        for name, wanted in parse_qsl(search, keep_blank_values=True):
            if name == "_count":
                count = int(wanted) if wanted.isdigit() else None
                continue
            test = _PARAMETERS.get(name)
            if test is None:
                raise ValueError(
                    f"prefetch template {template!r}: search parameter {name!r} is not "
                    f"supported here; use {', '.join(sorted(_PARAMETERS))} or _count"
                )
            values = set(wanted.split(","))
            matches = [r for r in matches if test(r, values)]
        return _searchset(matches[:count] if count is not None else matches)
    raise ValueError(
        f"prefetch template {template!r} is neither a FHIR read ('Type/id') nor a search "
        "('Type?param=value'); write it as one of those"
    )


def _searchset(resources: Iterable[Resource]) -> Bundle:
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    )


def _references(resource: Resource, *fields: str) -> set[str]:
    found: set[str] = set()
    for name in fields:
        value = getattr(resource, name, None)
        for ref in value if isinstance(value, list) else [value]:
            reference = getattr(ref, "reference", None)
            if isinstance(reference, str):
                found.add(reference)
                found.add(reference.rpartition("/")[2])
    return found


def _patient(resource: Resource, values: set[str]) -> bool:
    return bool(_references(resource, "subject", "patient") & values)


def _encounter(resource: Resource, values: set[str]) -> bool:
    return bool(_references(resource, "encounter") & values)


_PARAMETERS: Mapping[str, Callable[[Resource, set[str]], bool]] = {
    "_id": lambda r, values: r.id in values,
    "patient": _patient,
    "subject": _patient,
    "encounter": _encounter,
    "status": lambda r, values: getattr(r, "status", None) in values,
}
