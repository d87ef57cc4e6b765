"""Values as each backend stores them, and stored timestamps read back as UTC datetimes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["Codec", "SqliteCodec", "from_db_time", "scores_from_json", "scores_to_json"]

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
    """Python values as the backend's statements take them (JSON columns take JSON
    text on every backend: see ``_schema._JsonText``)."""

    @staticmethod
    def time(value: datetime) -> Any:
        return value


class SqliteCodec(Codec):
    """SQLite takes timestamps as naive UTC text (SQLAlchemy's format)."""

    @staticmethod
    def time(value: datetime) -> Any:
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")[:-6]  # drop "+00:00"


# Request scores in JSON (the requests.scores column): JSON has no NaN or infinities, and
# the tracker's JSON encoder refuses them, so NaN is stored as null and +/-inf as the
# strings "inf" and "-inf"; every other value is a JSON number. The same text on both
# backends, read back exactly.
_INF, _NEG_INF = "inf", "-inf"
_FROM_JSON: dict[Any, float] = {None: math.nan, _INF: math.inf, _NEG_INF: -math.inf}


def scores_to_json(scores: Mapping[str, float]) -> dict[str, float | str | None]:
    """Validated scores (floats) as JSON-safe values: NaN as null, +/-inf as text."""
    return {
        name: value
        if math.isfinite(value)
        else (None if value != value else _INF if value > 0 else _NEG_INF)
        for name, value in scores.items()
    }


def scores_from_json(stored: Mapping[str, Any]) -> dict[str, float]:
    """Decoded JSON of :func:`scores_to_json` as scores; raises ValueError, TypeError or
    AttributeError on anything it never writes (another writer's value)."""
    return {
        name: value if value.__class__ is float else _score_from_json(value)
        for name, value in stored.items()
    }


def _score_from_json(value: Any) -> float:
    if value.__class__ is int:  # written by another writer as an integer
        return float(value)
    try:
        return _FROM_JSON[value]
    except (KeyError, TypeError):
        raise ValueError(f"not a stored score: {value!r}") from None
