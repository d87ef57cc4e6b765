"""Experiments as people read them: times, durations and JSON records of every field.

Pure functions over tracker records, shared by the command line and the dashboard; this
module sits below both and imports no web stack.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from healthchain.tracking import Experiment

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "EXPERIMENT_COLUMNS",
    "SHORT_ID_LENGTH",
    "experiment_record",
    "format_duration",
    "format_time",
    "plural",
    "validation_summary",
    "validation_text",
]

SHORT_ID_LENGTH = 8
"""Characters of an id tables show at least, as git shows commits; more where needed."""


def plural(count: int, noun: str) -> str:
    """``1 experiment``, ``2 experiments``, ``1,200 experiments``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


# What pydantic puts before a validator's own message; the message reads without it.
_VALIDATION_PREFIXES = ("Value error, ", "Assertion failed, ")
_INPUT_SHOULD = "Input should"


def validation_text(message: str, value: object) -> str:
    """A pydantic error message as people read it: no ``Value error,`` prefix, and naming
    the bad ``value`` (``got '-1'; it should be greater than or equal to 0``)."""
    message = _reworded(message)
    shown = repr(value)
    return message if shown in message else f"got {shown}; {message}"


def _reworded(message: str) -> str:
    for prefix in _VALIDATION_PREFIXES:
        message = message.removeprefix(prefix)
    if message.startswith(_INPUT_SHOULD):
        message = "it should" + message[len(_INPUT_SHOULD) :]
    return message


_SHOWN_INPUT = 60
"""Characters of a bad value's repr a one-line summary shows; the rest is counted."""


def validation_summary(exc: ValidationError) -> str:
    """A pydantic ``ValidationError`` in one line: how many errors, then the first one's
    place and message as :func:`validation_text` words it (``1 error; first at
    cards.0.indicator: got 'loud'; it should be 'info', 'warning' or 'critical'``)."""
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    value = first.get("input")
    if first["type"] == "missing" or isinstance(value, dict | list):
        # the whole object around the field, or a model's own check: the message says it
        message = _reworded(first["msg"])
    else:
        message = validation_text(first["msg"], _Shown(value))
    return f"{plural(len(errors), 'error')}; first at {where}: {message}"


class _Shown:
    """A value whose repr is cut to :data:`_SHOWN_INPUT` characters, with its length."""

    __slots__ = ("_text",)

    def __init__(self, value: object) -> None:
        text = repr(value)
        if len(text) > _SHOWN_INPUT:
            size = len(value) if isinstance(value, str) else len(text)
            text = f"{text[:_SHOWN_INPUT]}... ({size:,} characters)"
        self._text = text

    def __repr__(self) -> str:
        return self._text


def format_time(value: datetime | None, *, short: bool = False) -> str:
    """``2026-11-27 16:35:24`` in UTC (``11-27 16:35`` if ``short``), or an empty string."""
    if value is None:
        return ""
    return value.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def format_duration(value: timedelta | None) -> str:
    """A short human duration (``420 ms``, ``4.20 s``, ``2m 05s``, ``1h 02m``), or empty if None."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):  # components: named tuples
        return [item._asdict() for item in value]
    return value


def _field(name: str) -> Callable[[Experiment], Any]:
    return lambda experiment: _json_value(getattr(experiment, name))


def _duration_s(experiment: Experiment) -> float | None:
    duration = experiment.duration
    return None if duration is None else duration.total_seconds()


def _number(value: float) -> float | str:
    # JSON has no NaN or infinity: they are written as the text that both Python's
    # float() and JavaScript's Number() read back
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _metrics(experiment: Experiment) -> dict[str, float | str]:
    return {key: _number(value) for key, value in experiment.metrics.items()}


def _columns() -> dict[str, Callable[[Experiment], Any]]:
    # Every field of the record, in its order, and the derived duration after end_time:
    # a field added to Experiment shows up in the CLI's JSON/CSV and here with no edit.
    columns: dict[str, Callable[[Experiment], Any]] = {}
    for field in dataclasses.fields(Experiment):
        columns[field.name] = _metrics if field.name == "metrics" else _field(field.name)
        if field.name == "end_time":
            columns["duration_s"] = _duration_s
    return columns


_COLUMNS = _columns()
EXPERIMENT_COLUMNS = tuple(_COLUMNS)
"""The keys of :func:`experiment_record`, in order: the CSV export's header."""


def experiment_record(experiment: Experiment) -> dict[str, Any]:
    """A JSON-ready dict of every field; times in ISO 8601 UTC, duration in seconds."""
    return {name: value(experiment) for name, value in _COLUMNS.items()}
