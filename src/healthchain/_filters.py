"""Filters as people type them (``--tag k=v``, ``?tag=k=v``) turned into tracker filters.

The command line and the dashboard share these, so a filter means the same in both; this
module sits below both and imports no web stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from healthchain.tracking import InvalidFilterError

__all__ = ["TagSyntaxError", "build_filters", "format_tag", "parse_tag"]


class TagSyntaxError(InvalidFilterError):
    """A tag filter is not ``key=value`` (or ``key:=JSON``)."""


_EXAMPLE = "write it as key=value, e.g. environment=production (key:=3 for a JSON value)"


def parse_tag(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (the value is a string) or ``key:=JSON`` (the value is parsed).

    Tags may hold numbers or booleans; ``epochs:=3`` matches ``{"epochs": 3}`` while
    ``epochs=3`` matches ``{"epochs": "3"}``.
    """
    key, sep, value = text.partition("=")
    if not sep:
        raise TagSyntaxError(f"tag filter {text!r} has no '='; {_EXAMPLE}")
    parsed: Any = value
    if key.endswith(":"):
        key = key[:-1]
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):  # also nested too deep, or a 5,000-digit number
            raise TagSyntaxError(
                f"tag filter {_short(text)}: {_short(value)} is not a JSON value healthchain "
                "can read; quote strings (key:='\"text\"') or use key=text"
            ) from None
    if not key.strip():
        raise TagSyntaxError(f"tag filter {text!r} has an empty key; {_EXAMPLE}")
    return key, parsed


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else f"{text[:80]!r}... ({len(text):,} characters)"


def format_tag(key: str, value: Any) -> str:
    """The inverse of :func:`parse_tag`: the text that filters on this tag."""
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}:={json.dumps(value, ensure_ascii=False, sort_keys=True)}"


def build_filters(
    *,
    project: str | None = None,
    statuses: Iterable[str] = (),
    tags: Iterable[str] = (),
    name: str | None = None,
) -> dict[str, Any]:
    """``list_experiments`` filters from typed text; empty values mean "any"."""
    filters: dict[str, Any] = {}
    wanted: dict[str, Any] = {}
    for text in tags:
        key, value = parse_tag(text)
        if key in wanted and wanted[key] != value:
            raise TagSyntaxError(
                f"tag {key!r} is filtered on twice ({format_tag(key, wanted[key])!r} and "
                f"{text!r}); an experiment has one value per tag"
            )
        wanted[key] = value
    if wanted:
        filters["tags"] = wanted
    chosen = [s for s in statuses if s]
    if chosen:
        filters["status"] = chosen
    if project:
        filters["project"] = project
    if name:
        filters["name"] = name
    return filters
