"""What ``list_experiments`` is asked: filters and ``order_by``, checked and normalised.

Metric values are compared as floats; a NaN metric (stored as NULL) matches no
comparison, ``!=`` included, as in SQL. In an ordering, NaN comes after every number and
an experiment without the metric after NaN, ascending or descending.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import NamedTuple, NoReturn

from ._exceptions import InvalidFilterError, InvalidInputError
from ._records import ExperimentStatus
from ._validation import check_storable, parse_status, show, validate_tags

__all__ = [
    "FILTER_KEYS",
    "MAX_ORDER_KEYS",
    "MAX_TAG_FILTERS",
    "METRIC_OPERATORS",
    "ORDER_FIELDS",
    "OrderKey",
    "ValidFilters",
    "validate_filters",
    "validate_order_by",
]

FILTER_KEYS = ("tags", "status", "name", "project", "metrics", "params")

MAX_TAG_FILTERS = 32
"""Tags one ``list_experiments`` filter may match on (each is one join); the same bound
holds for metrics and for params."""

METRIC_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")

ORDER_FIELDS = ("start_time", "name", "duration")
"""What ``order_by`` takes besides ``metrics.<key>``; each may start with ``-``."""

MAX_ORDER_KEYS = 8
"""Keys one ``order_by`` may list (each metric in it is one join)."""

_METRIC_PREFIX = "metrics."


class ValidFilters(NamedTuple):
    """Filters checked and normalised for the query builder."""

    tags: dict[str, str]
    """Tag key to canonical JSON text of the wanted value."""
    statuses: tuple[ExperimentStatus, ...]
    name: str | None
    project: str | None
    metrics: tuple[tuple[str, str, float], ...] = ()
    """(key, operator, bound) per metric, in the order given."""
    params: dict[str, str] = {}  # noqa: RUF012 (never mutated: a NamedTuple default)
    """Param key to canonical JSON text of the wanted value."""


class OrderKey(NamedTuple):
    """One key of an ordering: a field or a metric, ascending or descending."""

    field: str
    """One of :data:`ORDER_FIELDS`, or ``"metric"``."""
    descending: bool
    metric: str | None = None
    """The metric's key when ``field`` is ``"metric"``."""


def validate_filters(filters: object) -> ValidFilters:
    """Check ``list_experiments`` filters; unknown keys and bad values name themselves."""
    if filters is None:
        return ValidFilters({}, (), None, None)
    if not isinstance(filters, Mapping):
        raise InvalidFilterError(
            f"filters must be a dict with keys from {FILTER_KEYS!r}, got {filters!r}"
        )
    unknown = [key for key in filters if key not in FILTER_KEYS]
    if unknown:
        raise InvalidFilterError(
            f"unknown filter key {unknown[0]!r}; filters accept {', '.join(FILTER_KEYS)}"
        )
    tag_texts = _json_matches(filters, "tags")
    param_texts = _json_matches(filters, "params")

    status = filters.get("status")
    statuses: tuple[ExperimentStatus, ...] = ()
    if status is not None:
        items: Iterable[object] = (
            [status] if isinstance(status, str) or not isinstance(status, Iterable) else status
        )
        wanted_statuses = {parse_status(s, what="filters['status']") for s in items}
        # In one fixed order, each once: the query's shape depends only on which are asked.
        statuses = tuple(s for s in ExperimentStatus if s in wanted_statuses)

    texts: list[str | None] = []
    for key in ("name", "project"):
        value = filters.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidFilterError(f"filters[{key!r}] must be a string, got {value!r}")
        if value is not None:
            check_storable(value, f"filters[{key!r}]", InvalidFilterError)
        texts.append(value)
    return ValidFilters(
        tag_texts,
        statuses,
        texts[0],
        texts[1],
        _metric_conditions(filters.get("metrics")),
        param_texts,
    )


def _json_matches(filters: Mapping[str, object], which: str) -> dict[str, str]:
    """Tags or params to match exactly: key to the canonical JSON text of the value."""
    wanted = filters.get(which)
    if isinstance(wanted, Mapping) and len(wanted) > MAX_TAG_FILTERS:
        _too_many(which, len(wanted))
    _, texts = validate_tags(wanted, what=f"filters[{which!r}]", error=InvalidFilterError)
    return texts


def _too_many(which: str, count: int) -> NoReturn:
    raise InvalidFilterError(
        f"filters[{which!r}] has {count:,} {which}; a filter may match at most "
        f"{MAX_TAG_FILTERS} {which} at once: narrow it with fewer {which}"
    )


_SHAPE = "write each as {'key': (operator, number)}, e.g. {'acc': ('>', 0.5)}"


def _metric_conditions(wanted: object) -> tuple[tuple[str, str, float], ...]:
    if wanted is None:
        return ()
    if not isinstance(wanted, Mapping):
        raise InvalidFilterError(
            f"filters['metrics'] must be a dict, got {type(wanted).__name__} {show(wanted)}; "
            + _SHAPE
        )
    if len(wanted) > MAX_TAG_FILTERS:
        _too_many("metrics", len(wanted))
    out: list[tuple[str, str, float]] = []
    for key, condition in wanted.items():
        what = f"filters['metrics'][{show(key)}]"
        _check_metric_key(key, "filters['metrics'] key", InvalidFilterError)
        if not isinstance(condition, tuple | list) or len(condition) != 2:
            raise InvalidFilterError(f"{what} = {show(condition)} is not a pair; {_SHAPE}")
        operator, bound = condition
        if operator not in METRIC_OPERATORS:
            raise InvalidFilterError(
                f"{what} has the unknown operator {show(operator)}; use one of "
                f"{', '.join(METRIC_OPERATORS)}"
            )
        out.append((key, operator, _bound(bound, what)))
    return tuple(out)


def _bound(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidFilterError(
            f"{what} compares with {show(value)}, which is not a number; use an int or a float"
        )
    try:
        bound = float(value)
    except OverflowError:
        raise InvalidFilterError(
            f"{what} compares with {show(value)}, an int too large for a float (metrics are "
            "floats); use a float such as 1e308 or inf"
        ) from None
    if math.isnan(bound):
        raise InvalidFilterError(
            f"{what} compares with nan, which no value equals or orders against (a NaN "
            "metric matches no comparison); compare with a number"
        )
    return bound


def _check_metric_key(key: object, what: str, error: type[InvalidInputError]) -> None:
    if not isinstance(key, str) or not key:
        raise error(f"{what} {show(key)} is not a non-empty string; name the metric")
    check_storable(key, f"{what} {show(key)}", error)


_ORDER_HELP = (
    "order by 'start_time', 'name', 'duration' or 'metrics.<key>', each with a leading "
    "'-' for descending, or a list of these"
)


def validate_order_by(order_by: object) -> tuple[OrderKey, ...]:
    """``order_by`` as :class:`OrderKey` items; ``()`` for the default (newest first)."""
    if order_by is None:
        return ()
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list | tuple):
        raise InvalidInputError(
            f"order_by must be a string or a list of strings, got {type(order_by).__name__} "
            f"{show(order_by)}; {_ORDER_HELP}"
        )
    if len(items) > MAX_ORDER_KEYS:
        raise InvalidInputError(
            f"order_by lists {len(items):,} keys; at most {MAX_ORDER_KEYS} may be given"
        )
    return tuple(_order_key(item) for item in items)


def _order_key(item: object) -> OrderKey:
    if not isinstance(item, str):
        raise InvalidInputError(f"order_by key {show(item)} is not a string; {_ORDER_HELP}")
    descending = item.startswith("-")
    name = item[1:] if descending else item
    if name.startswith(_METRIC_PREFIX):
        key = name[len(_METRIC_PREFIX) :]
        _check_metric_key(key, f"order_by {show(item)}: metric key", InvalidInputError)
        return OrderKey("metric", descending, key)
    if name in ORDER_FIELDS:
        return OrderKey(name, descending)
    raise InvalidInputError(f"unknown order_by key {show(item)}; {_ORDER_HELP}")
