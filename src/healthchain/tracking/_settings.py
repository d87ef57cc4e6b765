"""``TrackerSettings``: the one home of the trackers' options, their defaults and ranges.

``AsyncExperimentTracker``, ``ExperimentTracker``, the writer and the sandbox's
``experiment_config`` all take their storage, heartbeat and outage options from here,
so a name, a default or a bound is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from ._exceptions import ConfigurationError

__all__ = [
    "DEFAULT_SETTINGS",
    "DEFAULT_STORAGE_URI",
    "HEARTBEAT_INTERVAL_RANGE",
    "MISSED_BEATS",
    "judged_interval",
    "MAX_QUEUED_WRITES_RANGE",
    "OUTAGE_TIMEOUT_RANGE",
    "TrackerSettings",
    "type_only",
    "validate_range",
]

DEFAULT_STORAGE_URI = "sqlite:///experiments.db"

HEARTBEAT_INTERVAL_RANGE = (0.05, 86_400.0)
MISSED_BEATS = 3
"""A RUNNING experiment whose last heartbeat is older than this many intervals is stale
(shown so) and may be reaped."""
"""Seconds between heartbeats: faster burns a core, slower than daily is not liveness."""
OUTAGE_TIMEOUT_RANGE = (0.1, 7 * 86_400.0)
"""Seconds writes are retried while storage is away: a tenth of a second to a week."""
MAX_QUEUED_WRITES_RANGE = (1, 10_000_000)
"""Writes held in memory during an outage."""


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """How a tracker reaches its storage and rides out outages; validated on creation.

    A value of the wrong type or outside its range raises :class:`ConfigurationError`
    naming the option, its range and the value given (see :meth:`validated` for other
    names and error types). The storage URI itself is resolved by the tracker.
    """

    storage_uri: str = DEFAULT_STORAGE_URI
    """Database URL as users write it, e.g. ``sqlite:///experiments.db``."""
    heartbeat_interval: float = 10.0
    """Seconds between heartbeats of a running experiment, from 0.05 to 86,400."""
    outage_timeout: float = 60.0
    """Seconds writes are retried while storage is unavailable, from 0.1 to 604,800."""
    max_queued_writes: int = 100_000
    """Writes held in memory during an outage (more are refused), from 1 to 10,000,000."""
    read_only: bool = False
    """Open for reading only: no writer, no heartbeat, no schema migration."""

    def __post_init__(self) -> None:
        for name, value in _checked(self, str, ConfigurationError).items():
            object.__setattr__(self, name, value)

    @classmethod
    def validated(
        cls,
        values: Mapping[str, Any],
        *,
        label: Callable[[str], str] = str,
        error: type[Exception] = ConfigurationError,
    ) -> Self:
        """Settings from ``values`` (any subset of the fields), each bad one raised as
        ``error`` naming it as ``label(field name)`` (e.g. ``experiment_config['...']``)."""
        given = {**{f.name: getattr(DEFAULT_SETTINGS, f.name) for f in fields(cls)}, **values}
        draft = object.__new__(cls)
        for name, value in given.items():
            object.__setattr__(draft, name, value)
        return cls(**_checked(draft, label, error))


def _checked(
    settings: TrackerSettings, label: Callable[[str], str], error: type[Exception]
) -> dict[str, Any]:
    uri: object = settings.storage_uri
    if (isinstance(uri, str) and not uri) or (not isinstance(uri, str) and not _is_url(uri)):
        got = repr(uri) if uri == "" else type_only(uri)
        raise error(
            f"{label('storage_uri')} must be a database URL such as "
            f"{DEFAULT_STORAGE_URI!r}, got {got}"
        )
    if not isinstance(settings.read_only, bool):
        raise error(f"{label('read_only')} must be True or False, got {settings.read_only!r}")
    return {
        "storage_uri": uri,
        "heartbeat_interval": validate_range(
            label("heartbeat_interval"),
            settings.heartbeat_interval,
            HEARTBEAT_INTERVAL_RANGE,
            error=error,
        ),
        "outage_timeout": validate_range(
            label("outage_timeout"), settings.outage_timeout, OUTAGE_TIMEOUT_RANGE, error=error
        ),
        "max_queued_writes": int(
            validate_range(
                label("max_queued_writes"),
                settings.max_queued_writes,
                MAX_QUEUED_WRITES_RANGE,
                unit="",
                integer=True,
                error=error,
            )
        ),
        "read_only": settings.read_only,
    }


def type_only(value: object) -> str:
    """``value`` for a message about a storage URI of the wrong type: any value may be a
    URL in some other type (bytes, a path object), so only its type is named."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _is_url(value: object) -> bool:
    from sqlalchemy.engine import URL

    return isinstance(value, URL)


def validate_range(
    name: str,
    value: object,
    bounds: tuple[float, float],
    *,
    unit: str = "s",
    integer: bool = False,
    error: type[Exception] = ConfigurationError,
) -> float:
    """Return ``value`` if it is a number within ``bounds`` (inclusive), or raise naming both.

    ``integer`` asks for an ``int``. A number from outside bounds everything it drives:
    timers, waits and queues take it as given, so a huge one overflows and a tiny one spins.
    """
    low, high = bounds
    kinds = int if integer else int | float
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        what = "an integer" if integer else "a number"
        span = f"from {_number(low)} to {_number(high)}{f' {unit}' if unit else ''}"
        raise error(f"{name} must be {what} {span}, got {value!r}")
    return value if integer else float(value)


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


DEFAULT_SETTINGS = TrackerSettings()
"""Every option at its default."""


def judged_interval(interval: Any) -> float:
    """A row's heartbeat interval clamped to the range trackers accept; the longest if unusable.

    Another program may have written the row: NULL, text, NaN, zero or negative count as
    the longest interval, so such a run is the last to be called stale.
    """
    low, high = HEARTBEAT_INTERVAL_RANGE
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        return high
    return min(max(float(interval), low), high)
