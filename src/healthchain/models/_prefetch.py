"""Filling CDS Hooks prefetch templates from an EHR's data, as its FHIR server would.

A template is a FHIR read (``Patient/{{context.patientId}}``: the resource) or search
(``Condition?patient={{context.patientId}}``: a ``searchset`` Bundle). Its tokens are
``{{context.<field>}}`` and the spec's user tokens (``{{userPractitionerId}}``,
``{{userPractitionerRoleId}}``, ``{{userPatientId}}``, ``{{userRelatedPersonId}}``: the
id part of ``context.userId`` when the user is of that type). Searches support the
spec's recommended subset this data can answer: references (``patient``, ``subject``,
``encounter``), ``_id``, token equality (``code``, ``category``, ``status``, ...,
``system|code`` too) and ``_count``. An operation such as
``Patient/{{context.patientId}}/$everything`` gives every resource, as a searchset.

As the spec says: a read or token the data has nothing for gives ``None`` ("If the CDS
Client has no data to populate a template prefetch key, the prefetch template key MUST
have a value of null"), and a template the client cannot satisfy is left out ("The CDS
Client MUST NOT include any prefetch template key that it chooses not to satisfy"),
with a warning naming it and why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource

__all__ = ["fill_prefetch"]

logger = logging.getLogger("healthchain.models")

_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class _Unsatisfiable(Exception):
    """A template this client cannot answer; the key is left out of the request."""


def fill_prefetch(
    templates: Mapping[str, str], context: Mapping[str, Any], bundle: Bundle
) -> dict[str, Resource | None]:
    """Answer each template from ``bundle``, keyed as given; unanswerable ones left out."""
    resources = [entry.resource for entry in bundle.entry or () if entry.resource is not None]
    filled: dict[str, Resource | None] = {}
    for key, template in templates.items():
        try:
            query = _substitute(template, context)
            filled[key] = None if query is None else _answer(query, resources)
        except _Unsatisfiable as exc:
            logger.warning("prefetch key %r (%r) is not sent: %s", key, template, exc)
    return filled


def _substitute(template: str, context: Mapping[str, Any]) -> str | None:
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        path = match.group(1)
        name = path.removeprefix("context.")
        found: object
        if path in _USER_TOKENS:
            kind, _, ident = str(context.get("userId") or "").partition("/")
            found = ident if kind == _USER_TOKENS[path] and ident else None
        elif name == path or not name:
            raise _Unsatisfiable(
                f"token {{{{{path}}}}} is neither {{{{context.<field>}}}} nor a user token "
                "such as {{userPractitionerId}}"
            )
        else:
            found = context.get(name)
        if found is None:
            missing = True  # e.g. encounterId in a patient-view: there is nothing to fetch
            return ""
        if not isinstance(found, str):
            raise _Unsatisfiable(f"context field {name!r} is not a string")
        return found

    query = _TOKEN.sub(value, template)
    return None if missing else query


def _answer(query: str, resources: list[Resource]) -> Resource | None:
    path, _, search = query.partition("?")
    parts = [part for part in path.strip("/").split("/") if part]
    if parts and parts[-1].startswith("$"):
        return _searchset(resources)
    if len(parts) == 2 and not search:
        kind, ident = parts
        return next((r for r in resources if r.get_resource_type() == kind and r.id == ident), None)
    if len(parts) != 1:
        raise _Unsatisfiable("it is neither a FHIR read ('Type/id') nor a search ('Type?...')")
    matches = [r for r in resources if r.get_resource_type() == parts[0]]
    count: int | None = None
    for name, wanted in parse_qsl(search, keep_blank_values=True):
        if name == "_count" and wanted.isdigit():
            count = int(wanted)
            continue
        test = _search_test(name)
        if test is None:
            raise _Unsatisfiable(
                f"search parameter {name!r} is not supported by the sandbox's client "
                f"(supported: {', '.join(sorted({*_REFERENCES, *_TOKENS, '_id', '_count'}))})"
            )
        values = set(wanted.split(","))
        matches = [r for r in matches if test(r, values)]
    return _searchset(matches[:count] if count is not None else matches)


def _searchset(resources: Iterable[Resource]) -> Bundle:
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    return Bundle.model_validate(
        {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    )


def _listed(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _references(resource: Resource, fields: tuple[str, ...], values: set[str]) -> bool:
    for name in fields:
        for ref in _listed(getattr(resource, name, None)):
            reference = getattr(ref, "reference", None)
            if isinstance(reference, str) and (
                reference in values or reference.rpartition("/")[2] in values
            ):
                return True
    return False


def _tokens(resource: Resource, field: str, values: set[str]) -> bool:
    for item in _listed(getattr(resource, field, None)):
        if isinstance(item, str):
            codes = [(None, item)]
        else:
            codings = getattr(item, "coding", None)
            codes = [(c.system, c.code) for c in (codings if codings is not None else [item])]
        for system, code in codes:
            if code is not None and (code in values or f"{system}|{code}" in values):
                return True
    return False


_REFERENCES = {
    "patient": ("subject", "patient"),
    "subject": ("subject",),
    "encounter": ("encounter",),
}
_TOKENS = {
    "code": "code",
    "category": "category",
    "status": "status",
    "intent": "intent",
    "type": "type",
    "clinical-status": "clinicalStatus",
    "verification-status": "verificationStatus",
}


def _search_test(name: str) -> Callable[[Resource, set[str]], bool] | None:
    if name == "_id":
        return lambda resource, values: resource.id in values
    if name in _REFERENCES:
        fields = _REFERENCES[name]
        return lambda resource, values: _references(resource, fields, values)
    if name in _TOKENS:
        field = _TOKENS[name]
        return lambda resource, values: _tokens(resource, field, values)
    return None
