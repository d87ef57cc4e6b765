"""Times across Python's whole range, and PostgreSQL sessions in another DateStyle: what
the time read-back tests (history, lists) run over."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from .postgres import admin_fetch

__all__ = ["MICROSECONDS", "OTHER_DATESTYLES", "datestyle", "instants"]

_BASES = [
    datetime(1, 1, 1),
    datetime(1, 1, 1, 0, 0, 1),
    datetime(999, 12, 31, 23, 59, 59),
    datetime(1899, 12, 31, 23, 59, 59),
    datetime(1969, 12, 31, 23, 59, 59),
    datetime(1970, 1, 1),
    datetime(1999, 12, 31, 23, 59, 59),
    datetime(2000, 1, 1),
    datetime(2000, 2, 29, 12, 30, 30),
    datetime(2038, 1, 19, 3, 14, 7),
    datetime(9999, 12, 31, 23, 59, 58),
    datetime(9999, 12, 31, 23, 59, 59),
]
MICROSECONDS = [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 500000, 999999]
"""Every count of trailing zeros PostgreSQL trims from a fraction, and none at all."""

OTHER_DATESTYLES = ["SQL, DMY", "Postgres, MDY", "German, DMY"]
"""DateStyles other than ISO, in which PostgreSQL prints no ISO text."""


def instants() -> list[datetime]:
    """Boundary instants (years 1 and 9999, around 1970 and 2000, a leap day, with each
    fraction) and a seeded sample of microseconds across the whole range, all in UTC."""
    edges = [base.replace(microsecond=us) for base in _BASES for us in MICROSECONDS]
    rng = random.Random(15)
    span = (datetime.max - datetime.min) // timedelta(microseconds=1)
    sample = [datetime.min + timedelta(microseconds=rng.randrange(span + 1)) for _ in range(400)]
    return [t.replace(tzinfo=UTC) for t in edges + sample]


_DATABASE = "EXECUTE format('ALTER DATABASE %I {}', current_database())"


@asynccontextmanager
async def datestyle(uri: str, style: str) -> AsyncIterator[None]:
    """Every session opened inside on the test database in DateStyle ``style``."""
    change = _DATABASE.format(f"SET datestyle = {style}")
    await admin_fetch(uri, f"DO $$ BEGIN {change}; END $$")
    try:
        [[row]] = await admin_fetch(uri, "SHOW datestyle")
        assert row[0] == style
        yield
    finally:
        await admin_fetch(uri, f"DO $$ BEGIN {_DATABASE.format('RESET datestyle')}; END $$")
