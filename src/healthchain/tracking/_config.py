"""Storage URIs as users write them, mapped to SQLAlchemy async URLs; tracker options."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from ._exceptions import ConfigurationError, DriverNotInstalledError
from ._values import check_storable

__all__ = [
    "DEFAULT_STORAGE_URI",
    "HEARTBEAT_INTERVAL_RANGE",
    "MAX_QUEUED_WRITES_RANGE",
    "OUTAGE_TIMEOUT_RANGE",
    "StorageConfig",
    "mask_uri",
    "resolve_storage_uri",
    "validate_heartbeat_interval",
    "validate_project_name",
    "validate_range",
]

DEFAULT_STORAGE_URI = "sqlite:///experiments.db"

# Users write the plain scheme; the tracker needs the async driver behind it.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}
_EXTRAS = {"asyncpg": "postgres"}


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """A validated storage location."""

    url: URL
    """The async SQLAlchemy URL the engine is built from."""
    display: str
    """The URL with any password masked: the only form that reaches messages and logs."""

    @property
    def is_sqlite(self) -> bool:
        """True when the storage is a SQLite file."""
        return self.url.get_backend_name() == "sqlite"


def mask_uri(uri: str | URL) -> str:
    """Return ``uri`` with its password replaced by ``***``, or the text unchanged if unparsable."""
    try:
        url = uri if isinstance(uri, URL) else make_url(uri)
    except (ArgumentError, ValueError, TypeError):
        return str(uri)
    return url.render_as_string(hide_password=True)


def resolve_storage_uri(uri: object) -> StorageConfig:
    """Validate ``uri`` and map it to the async driver, without touching the database."""
    if not isinstance(uri, str | URL):
        raise ConfigurationError(
            f"storage_uri must be a string such as {DEFAULT_STORAGE_URI!r}, got {uri!r}"
        )
    try:
        url = uri if isinstance(uri, URL) else make_url(uri)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"storage_uri {mask_uri(uri)!r} is not a database URL; write it like "
            f"{DEFAULT_STORAGE_URI!r} or 'postgresql://user@host/dbname'"
        ) from exc
    url = url.set(drivername=_ASYNC_DRIVERS.get(url.drivername, url.drivername))
    shown = url.render_as_string(hide_password=True)

    try:
        dialect_cls = url.get_dialect()
    except NoSuchModuleError as exc:
        raise ConfigurationError(
            f"unsupported storage_uri scheme {url.drivername!r} in {shown!r}; "
            "use 'sqlite:///path/to/file.db' or 'postgresql://user@host/dbname'"
        ) from exc
    if not getattr(dialect_cls, "is_async", False):
        raise ConfigurationError(
            f"storage_uri scheme {url.drivername!r} names a synchronous driver; the tracker "
            "needs an async one, e.g. 'sqlite+aiosqlite' or 'postgresql+asyncpg'"
        )
    try:
        dialect_cls.import_dbapi()
    except ImportError as exc:
        driver = url.get_driver_name()
        extra = _EXTRAS.get(driver)
        hint = f"pip install 'healthchain[{extra}]'" if extra else f"pip install {driver}"
        raise DriverNotInstalledError(
            f"storage_uri {shown!r} needs the {driver!r} driver, which is not installed; "
            f"run: {hint}"
        ) from exc

    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ConfigurationError(
            f"storage_uri {shown!r} is an in-memory SQLite database, which each connection "
            "sees empty; give a file path such as 'sqlite:///experiments.db'"
        )
    return StorageConfig(url=url, display=shown)


HEARTBEAT_INTERVAL_RANGE = (0.05, 86_400.0)
"""Seconds between heartbeats: faster burns a core, slower than daily is not liveness."""
OUTAGE_TIMEOUT_RANGE = (0.1, 7 * 86_400.0)
"""Seconds writes are retried while storage is away: a tenth of a second to a week."""
MAX_QUEUED_WRITES_RANGE = (1, 10_000_000)
"""Writes held in memory during an outage."""


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


def validate_heartbeat_interval(value: object) -> float:
    """Return ``value`` as a number of seconds from 0.05 to 86,400 (one day)."""
    return validate_range("heartbeat_interval", value, HEARTBEAT_INTERVAL_RANGE)


def validate_project_name(value: object) -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"project_name must be a non-empty string, got {value!r}")
    check_storable(value, "project_name", ConfigurationError)
    return value
