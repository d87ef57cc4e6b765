"""PostgreSQL times as text the client parses in C, for the reads that return many.

asyncpg builds each ``timestamptz`` as epoch + timedelta(0, s, us), objects and
arithmetic per value; the same time as ISO text in UTC, which ``datetime.fromisoformat``
parses in C, costs a sixth of that on the client (see ``_metric_reads``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Text, case, cast, func, literal_column, not_, or_

__all__ = ["FIRST", "LAST", "iso_utc", "text_in_any_datestyle"]

_Time = DateTime(timezone=True)
FIRST = literal_column("'0001-01-01 00:00:00+00'::timestamptz", _Time)
"""The earliest time Python holds (``datetime.min`` in UTC)."""
LAST = literal_column("'9999-12-31 23:59:59.999999+00'::timestamptz", _Time)
"""The latest time Python holds (``datetime.max`` in UTC)."""
_UTC = literal_column("'UTC'", Text)
_Z = literal_column("'Z'", Text)
# SQLite's stored form (naive UTC, 26 characters): from_db_time's fast path reads it
_NAIVE_UTC = literal_column("'YYYY-MM-DD HH24:MI:SS.US'", Text)


def iso_utc(time: Any) -> Any:
    """A timestamptz as ISO text in UTC, "2024-05-01 12:00:00.5Z" in DateStyle ISO;
    NULL stays NULL, infinity reads "infinityZ"."""
    return cast(func.timezone(_UTC, time), Text).concat(_Z)


def text_in_any_datestyle(time: Any) -> Any:
    """A timestamptz as text ``from_db_time`` reads, whatever the session's DateStyle:
    a time Python holds as naive UTC text (``to_char``, which DateStyle does not touch),
    infinity as the end of Python's range it stands for (as asyncpg's value reads), and
    a year Python cannot hold as the server prints it (so it reads as unreadable, and
    the warning quotes what is stored)."""
    clamped = func.least(func.greatest(time, FIRST), LAST)
    held = or_(not_(func.isfinite(time)), time.between(FIRST, LAST))
    return case(
        (held, func.to_char(func.timezone(_UTC, clamped), _NAIVE_UTC)), else_=cast(time, Text)
    )
