"""Filters as people type them (``--tag k=v``, ``--metric 'acc>0.5'``, ``?param=model=x``)
turned into tracker filters.

The command line and the dashboard share these, so a filter means the same in both; this
module sits below both and imports no web stack.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from healthchain.tracking import InvalidFilterError
from healthchain.tracking._search import METRIC_OPERATORS
from healthchain.tracking._validation import check_depth

__all__ = [
    "TagSyntaxError",
    "build_filters",
    "format_tag",
    "parse_metric_filter",
    "parse_param_filter",
    "parse_tag",
]


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
            # Python 3.12+ decodes deeper nesting than 3.11 before a RecursionError: the
            # tracker's own depth limit makes the answer the same on every version.
            if isinstance(parsed, dict | list):
                check_depth(parsed, "the value", ValueError)
        except (ValueError, RecursionError):  # also nested too deep, or a 5,000-digit number
            raise TagSyntaxError(
                f"tag filter {_short(text)}: {_short(value)} is not a JSON value healthchain "
                "can read; quote strings (key:='\"text\"') or use key=text"
            ) from None
    if not key.strip():
        raise TagSyntaxError(f"tag filter {text!r} has an empty key; {_EXAMPLE}")
    return key, parsed


_METRIC_EXAMPLE = (
    f"write it as key, operator, number, e.g. acc>0.5 (operators: {', '.join(METRIC_OPERATORS)})"
)
# Longest first, so "acc>=0.5" splits at ">=" rather than at ">".
_BY_LENGTH = sorted(METRIC_OPERATORS, key=len, reverse=True)


def parse_metric_filter(text: str) -> tuple[str, str, float]:
    """Parse ``acc>0.5`` into ``("acc", ">", 0.5)``: key, operator, number.

    The key ends at the first operator character (``<``, ``>``, ``=``, ``!``); spaces
    around the key and the number are ignored.
    """
    start = min((i for i in map(text.find, "<>=!") if i >= 0), default=-1)
    if start < 0:
        raise InvalidFilterError(f"metric filter {_short(text)} has no operator; {_METRIC_EXAMPLE}")
    operator = next((op for op in _BY_LENGTH if text.startswith(op, start)), None)
    if operator is None:  # a lone "!"
        raise InvalidFilterError(
            f"metric filter {_short(text)} has no known operator at {text[start:]!r}; "
            + _METRIC_EXAMPLE
        )
    key, number = text[:start].strip(), text[start + len(operator) :].strip()
    if not key:
        raise InvalidFilterError(
            f"metric filter {_short(text)} has no metric key; {_METRIC_EXAMPLE}"
        )
    try:
        bound = float(number)
    except ValueError:
        bound = math.nan
    if math.isnan(bound):  # also "nan" itself: it compares with nothing
        raise InvalidFilterError(
            f"metric filter {_short(text)} compares with {_short(number)}, which is not a "
            f"number; {_METRIC_EXAMPLE}"
        )
    return key, operator, bound


_PARAM_EXAMPLE = "write it as key=value, e.g. model=gpt-4o or epochs=3"


def parse_param_filter(text: str) -> tuple[str, Any]:
    """Parse ``model=x`` into ``("model", "x")``; a value that parses as JSON is JSON.

    Params are mostly numbers and names, so ``epochs=3`` matches ``{"epochs": 3}`` and
    ``model=gpt-4o`` matches ``{"model": "gpt-4o"}``; ``name="3"`` matches the string.
    """
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidFilterError(f"param filter {_short(text)} has no '='; {_PARAM_EXAMPLE}")
    if not key.strip():
        raise InvalidFilterError(f"param filter {_short(text)} has an empty key; {_PARAM_EXAMPLE}")
    try:
        return key, json.loads(value)
    except (ValueError, RecursionError):  # not JSON (or nested too deep): the text itself
        return key, value


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
    metrics: Iterable[str] = (),
    params: Iterable[str] = (),
) -> dict[str, Any]:
    """``list_experiments`` filters from typed text; empty values mean "any"."""
    filters: dict[str, Any] = {}
    for which, wanted in (
        ("metrics", _by_key(metrics, _metric_condition, "metric", InvalidFilterError)),
        ("params", _by_key(params, parse_param_filter, "param", InvalidFilterError)),
        ("tags", _by_key(tags, parse_tag, "tag", TagSyntaxError)),
    ):
        if wanted:
            filters[which] = wanted
    chosen = [s for s in statuses if s]
    if chosen:
        filters["status"] = chosen
    if project:
        filters["project"] = project
    if name:
        filters["name"] = name
    return filters


def _metric_condition(text: str) -> tuple[str, tuple[str, float]]:
    key, operator, bound = parse_metric_filter(text)
    return key, (operator, bound)


def _by_key(
    texts: Iterable[str],
    parse: Callable[[str], tuple[str, Any]],
    noun: str,
    error: type[InvalidFilterError],
) -> dict[str, Any]:
    """Each key's wanted value; the same key twice must want the same value."""
    wanted: dict[str, Any] = {}
    typed: dict[str, str] = {}
    for text in texts:
        key, value = parse(text)
        if key in wanted and wanted[key] != value:
            # the tracker's filters hold one value (or one condition) per key
            raise error(
                f"{noun} {key!r} is filtered on twice ({typed[key]!r} and {text!r}); a run "
                f"has one value per {noun}: keep one"
            )
        wanted[key], typed[key] = value, text
    return wanted
