"""Running a whole function on an aiosqlite connection's thread: the one dependency internal.

aiosqlite runs every sqlite3 call on a thread of its own, and each of its public calls is
one hop there and back (~150 µs on a small machine). A group commit of hundreds of rows
or a list of thousands of experiments would pay that per statement. No public route
runs several sqlite3 calls in one hop, so, when aiosqlite still has them,
:class:`ConnectionThread` uses two internals that have been its entry point for
every call since its first releases: ``Connection._execute(fn, *args)`` (run ``fn`` on
the thread) and ``Connection._conn`` (the sqlite3 connection there).

Checked against aiosqlite 0.20.0 and 0.22.1 (pyproject.toml's lower bound is 0.20). If a release
renames them, :data:`ONE_HOP` is False and the same functions run through SQLAlchemy's
public ``AsyncConnection.run_sync``, one hop per statement: slower, never wrong. The
test suite runs the tracker's tests both ways.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["CHECKED_VERSIONS", "ONE_HOP", "ConnectionThread"]

T = TypeVar("T")

CHECKED_VERSIONS = ">=0.20,<0.23"
"""The aiosqlite releases the internals below were checked against."""


def _has_internals() -> bool:
    execute = getattr(aiosqlite.Connection, "_execute", None)
    return (
        inspect.iscoroutinefunction(execute)
        and list(inspect.signature(execute).parameters)[:2] == ["self", "fn"]
        and isinstance(getattr(aiosqlite.Connection, "_conn", None), property)
    )


ONE_HOP: bool = _has_internals()
"""Whether a function runs on aiosqlite's thread in one hop (else through ``run_sync``)."""


class ConnectionThread:
    """Runs functions on one aiosqlite connection's thread (see the module docstring)."""

    __slots__ = ("_conn", "_driver")

    def __init__(self, conn: AsyncConnection, driver: Any) -> None:
        self._conn, self._driver = conn, driver

    @classmethod
    async def of(cls, conn: AsyncConnection) -> ConnectionThread:
        """For ``conn``, held as long as it is: its driver connection is looked up once."""
        driver = (await conn.get_raw_connection()).driver_connection if ONE_HOP else None
        return cls(conn, driver)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(sqlite3-like connection, *args)``, off the event loop thread.

        The connection ``fn`` gets has sqlite3's ``execute``, ``executemany``, ``commit``
        and ``rollback``; whatever it leaves open (a transaction) is ``fn``'s to close.
        """
        driver = self._driver
        if driver is None:
            return await self._conn.run_sync(_through_adapter, fn, args)
        box: list[T] = await driver._execute(_with_connection, driver, fn, *args)
        # aiosqlite's worker keeps its last result in a local until its next call; handing
        # the result over in a box we empty means a large list is not kept alive twice.
        return box.pop()


def _with_connection(driver: Any, fn: Callable[..., T], *args: Any) -> list[T]:
    return [fn(driver._conn, *args)]


def _through_adapter(conn: Connection, fn: Callable[..., T], args: Sequence[Any]) -> T:
    return fn(_Adapted(conn.connection.dbapi_connection), *args)


class _Adapted:
    """SQLAlchemy's aiosqlite DB-API adapter with sqlite3.Connection's shortcuts."""

    __slots__ = ("_dbapi",)

    def __init__(self, dbapi: Any) -> None:
        self._dbapi = dbapi

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self._dbapi.cursor()
        cursor.execute(sql, params)
        return cursor

    def executemany(self, sql: str, rows: Any) -> Any:
        cursor = self._dbapi.cursor()
        cursor.executemany(sql, list(rows))
        return cursor

    def commit(self) -> None:
        self._dbapi.commit()

    def rollback(self) -> None:
        self._dbapi.rollback()
