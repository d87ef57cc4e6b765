"""Values as each backend stores them, and stored timestamps read back as UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["Codec", "SqliteCodec", "from_db_time"]

_fromisoformat = datetime.fromisoformat


def from_db_time(value: Any) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite stores naive UTC text)."""
    if value is None:
        return None
    if value.__class__ is str:
        if len(value) == 26:  # our own format, naive UTC: the fast path for large lists
            return _fromisoformat(value + "+00:00")
        value = _fromisoformat(value)
    tzinfo = value.tzinfo
    if tzinfo is UTC:  # asyncpg's: PostgreSQL's timestamptz, already UTC
        return value  # type: ignore[no-any-return]
    if tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


class Codec:
    """Python values as the backend's statements take them."""

    json_as_text = False

    @staticmethod
    def time(value: datetime) -> Any:
        return value


class SqliteCodec(Codec):
    """SQLite takes timestamps as naive UTC text (SQLAlchemy's format) and JSON as text."""

    json_as_text = True

    @staticmethod
    def time(value: datetime) -> Any:
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")[:-6]  # drop "+00:00"
