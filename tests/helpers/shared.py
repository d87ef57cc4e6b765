"""Data recorded once per module and read by many tests: its storage, and proof it stays read-only.

Recording the same runs before every test that only reads them was most of the suite's
time on some modules. A module-scoped fixture records them once per backend instead, in a
database no other test resets (a SQLite file of its own; on PostgreSQL a second database
on the same server, ``<db>_shared``), and :func:`kept_read_only` fails the module should
any of its users change a single row. The ``shared_storage`` fixture (conftest) gives one
such database per module and backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from healthchain.tracking._schema import metadata

from .postgres import postgres_url, reset_postgres, sibling_database
from .storage import Storage

__all__ = ["kept_read_only", "make_shared_storage", "snapshot"]

SHARED_SUFFIX = "_shared"


def make_shared_storage(kind: Literal["sqlite", "postgresql"], directory: Any) -> Storage:
    """An empty database for one module's shared data: a new SQLite file in ``directory``
    (a ``tmp_path_factory.mktemp`` folder), or the ``<db>_shared`` PostgreSQL database,
    created on first use and emptied here."""
    if kind == "sqlite":
        path = directory / "shared.db"
        return Storage("sqlite", f"sqlite:///{path}", path)
    url = asyncio.run(sibling_database(postgres_url(), SHARED_SUFFIX))
    asyncio.run(reset_postgres(url))
    return Storage("postgresql", url)


def snapshot(storage: Storage) -> dict[str, list[str]]:
    """Every row of every healthchain table, as sorted text: equal snapshots, equal data."""
    return {
        table.name: sorted(map(repr, storage.query(f"SELECT * FROM {table.name}")))
        for table in metadata.sorted_tables
        if storage.has_table(table.name)
    }


@contextmanager
def kept_read_only(storage: Storage) -> Iterator[None]:
    """Around the shared data's users: after the last one, not one row may have changed."""
    before = snapshot(storage)
    assert before.get("experiments"), "snapshot taken before the shared data was recorded"
    yield
    after = snapshot(storage)
    changed = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
    assert not changed, f"a test wrote to the shared, read-only data: tables {changed} changed"
