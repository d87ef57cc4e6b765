"""Validation of metrics and params before they are queued: keys, values, steps, times.

Everything here runs on the hot path of ``log_metric``: the common case (a short ASCII
key, a float, no step) takes a handful of type checks.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._exceptions import InvalidInputError
from ._validation import MAX_ROWS, MAX_TAG_BYTES, check_storable, show, utcnow, validate_tags

__all__ = [
    "MAX_METRIC_KEY_BYTES",
    "MAX_STEP",
    "validate_metric_key",
    "validate_metric_value",
    "validate_metrics",
    "validate_params",
    "validate_scores",
    "validate_step",
    "validate_timestamp",
]

MAX_METRIC_KEY_BYTES = MAX_TAG_BYTES
"""A metric key in bytes of UTF-8: it is indexed with the value, as a tag is."""
MAX_STEP = MAX_ROWS
"""Largest step: a signed 64-bit integer, SQL's BIGINT."""
_INT_FLOAT = 2**1023  # ints this large at most convert to a float without overflow


def validate_metric_key(key: object, what: str = "key") -> str:
    """A metric key: a non-empty string that every backend can store and index."""
    if type(key) is str and key and key.isascii() and len(key) <= MAX_METRIC_KEY_BYTES:
        if "\x00" in key:
            check_storable(key, f"{what} {show(key)}")
        return key
    if not isinstance(key, str) or not key:
        raise InvalidInputError(
            f"{what} must be a non-empty string naming the metric, got {type(key).__name__} "
            f"{show(key)}; use e.g. 'accuracy'"
        )
    check_storable(key, f"{what} {show(key)}")
    size = len(key.encode())
    if size > MAX_METRIC_KEY_BYTES:
        raise InvalidInputError(
            f"{what} {show(key)} takes {size:,} bytes of UTF-8; a metric key may take at most "
            f"{MAX_METRIC_KEY_BYTES:,}, since it is indexed: use a shorter name"
        )
    return str(key)


def validate_metric_value(value: object, what: str = "value") -> float:
    """A metric value as a float: ints and floats (NaN and infinities too), never bools."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    if kind is not int and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise InvalidInputError(
            f"{what} must be an int or a float, got {type(value).__name__} {show(value)}; "
            "convert it to a number first"
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise InvalidInputError(
            f"{what} {show(value)} is too large for a float (a metric is stored as a 64-bit "
            "float, at most about 1.8e308); scale it down"
        ) from None


def validate_step(step: object) -> int | None:
    """A step: None (assigned by the tracker) or an int from 0 to :data:`MAX_STEP`."""
    if step is None or (type(step) is int and 0 <= step <= MAX_STEP):
        return step
    if not isinstance(step, bool) and isinstance(step, numbers.Integral):
        number = int(step)
        if 0 <= number <= MAX_STEP:
            return number
    raise InvalidInputError(
        f"step must be an integer from 0 to {MAX_STEP:,} (2**63 - 1) or None, "
        f"got {show(step)}; leave it out to use one more than the key's last step"
    )


def validate_timestamp(timestamp: object) -> datetime:
    """When a point was measured: a timezone-aware datetime; None means now."""
    if timestamp is None:
        return utcnow()
    if not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
        raise InvalidInputError(
            f"timestamp must be a timezone-aware datetime or None, got {show(timestamp)}; "
            "use e.g. datetime.now(UTC)"
        )
    return timestamp


def validate_metrics(metrics: object) -> list[tuple[str, float]]:
    """``{key: value}`` for ``log_metrics`` as ``[(key, value), ...]``, in the dict's order."""
    if type(metrics) is not dict and not isinstance(metrics, Mapping):
        raise InvalidInputError(
            f"metrics must be a dict of metric keys to numbers, got {type(metrics).__name__} "
            f"{show(metrics)}"
        )
    out: list[tuple[str, float]] = []
    for key, value in metrics.items():
        checked = validate_metric_key(key, "metrics key")
        kind = type(value)
        if kind is not float:
            # An int, the common other case, without building an error message first.
            number = float(value) if kind is int and -_INT_FLOAT <= value <= _INT_FLOAT else None
            value = (
                validate_metric_value(value, f"metrics[{show(checked)}]")
                if number is None
                else number
            )
        out.append((checked, value))
    return out


def validate_params(params: object) -> dict[str, str]:
    """``{key: canonical JSON text}`` of params: JSON values, checked like tags."""
    texts: dict[str, Any]
    _, texts = validate_tags(params, what="params")
    return texts


def validate_scores(scores: object, what: str) -> dict[str, float]:
    """One request's scores (``RequestRecord.scores``) as ``{name: float}``: names and
    values as metric keys and values, since each score's mean is logged as a metric."""
    if not isinstance(scores, Mapping):
        raise InvalidInputError(
            f"{what} must be a mapping of score names to numbers, got "
            f"{type(scores).__name__} {show(scores)}"
        )
    # Floats pass without a call: the message naming the score is built only for an error.
    return {
        validate_metric_key(name, f"{what}: score name"): value
        if type(value) is float
        else validate_metric_value(value, f"{what}[{show(name)}]")
        for name, value in scores.items()
    }
