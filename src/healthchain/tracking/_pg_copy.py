"""Large batches of metric points by PostgreSQL's COPY, on the connection the engine hands out.

An INSERT of many rows from ``unnest``ed arrays (:meth:`._pg_executor.PgExecutor.write_all`)
still runs the executor over every row; binary COPY hands the rows to the table's
storage directly. asyncpg sends it with ``Connection.copy_records_to_table``, an
awaitable of the driver connection, reached inside ``run_sync`` through SQLAlchemy's
public ``AdaptedConnection.run_async`` (documented for awaitable-only driver methods):
no private API, no second connection.

COPY costs a round trip more than the INSERT it replaces, and a transaction around it
(BEGIN and COMMIT: the INSERT alone runs in autocommit), so it pays only from
:data:`COPY_MIN_ROWS` rows. It joins the transaction the batch's other statement began
(the adapter begins one on a statement, never on a COPY): so the two are atomic, and a
failure of either fails the batch, which is then replayed one operation at a time.

Errors are raised as SQLAlchemy's (an integrity error as :class:`IntegrityError`, which
the operations already handle); a lost connection is invalidated, as for any statement.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql import Executable, Insert

from ._schema import INSERT_METRIC_POINT

__all__ = ["COPIED", "COPY_MIN_ROWS", "Copier"]

COPY_MIN_ROWS = 10_000
"""Rows from which an INSERT in :data:`COPIED` goes by COPY. Measured through the writer
(batches of 10-key ops, COPY and INSERT interleaved, local PostgreSQL 15, two runs on a
loaded machine), COPY's time over the INSERT's: 1.16-1.26x at 600-1,000 rows, 0.95-1.23x
at 2,560-5,000, 0.90-0.94x at 10,000, 0.71-0.87x at 20,000-25,600. The server's work per
row (a foreign key check, two indexes) is most of either; below 10,000 rows COPY's own
BEGIN and COMMIT cost about what it saves."""

COPIED: frozenset[Executable] = frozenset({INSERT_METRIC_POINT})
"""INSERTs of plain column values (no default computed by SQL) that may go by COPY."""


class _Target:
    """Where one INSERT's rows go by COPY: its table, its columns, a row as a record."""

    __slots__ = ("columns", "record", "table")

    def __init__(self, stmt: Executable) -> None:
        insert = cast(Insert, stmt)
        self.table: str = insert.table.name
        # Its parameters are named for their columns (``_schema._insert``).
        self.columns = tuple(insert.compile().params)
        self.record: Callable[[Any], tuple[Any, ...]] = operator.itemgetter(*self.columns)


_TARGETS = {stmt: _Target(stmt) for stmt in COPIED}


class Copier:
    """COPY on one DB-API connection of asyncpg's adapter; see :func:`of`."""

    __slots__ = ("_conn", "_dbapi")

    def __init__(self, conn: Connection, dbapi: Any) -> None:
        self._conn, self._dbapi = conn, dbapi

    @classmethod
    def of(cls, conn: Connection) -> Copier | None:
        """A copier for ``conn``, or None if its driver connection offers no COPY (then
        every INSERT stays an INSERT)."""
        dbapi = conn.connection.dbapi_connection
        driver = getattr(dbapi, "driver_connection", None)
        usable = callable(getattr(dbapi, "run_async", None)) and callable(
            getattr(driver, "copy_records_to_table", None)
        )
        return cls(conn, dbapi) if usable else None

    @staticmethod
    def wanted(parts: Sequence[tuple[Executable, Sequence[dict[str, Any]]]]) -> int | None:
        """The index of the part of ``parts`` to COPY: one in :data:`COPIED` with at least
        :data:`COPY_MIN_ROWS` rows, beside another part with rows (whose statement begins
        the transaction the COPY joins); None if there is none."""
        for n, (stmt, rows) in enumerate(parts):
            if len(rows) >= COPY_MIN_ROWS and stmt in COPIED:
                others = any(rows for i, (_, rows) in enumerate(parts) if i != n)
                return n if others else None
        return None

    def copy(self, stmt: Executable, rows: Sequence[dict[str, Any]]) -> None:
        """COPY ``rows`` of INSERT ``stmt`` (one of :data:`COPIED`), inside the
        transaction a statement has begun on this connection."""
        target = _TARGETS[stmt]
        records = list(map(target.record, rows))
        try:
            self._dbapi.run_async(
                lambda driver: driver.copy_records_to_table(
                    target.table, records=records, columns=target.columns
                )
            )
        except Exception as exc:
            raise self._translated(exc, target.table) from exc

    def _translated(self, exc: Exception, table: str) -> Exception:
        """``exc`` (asyncpg's own, raw) as SQLAlchemy raises a statement's failure."""
        import asyncpg

        what = f"COPY {table} FROM STDIN (FORMAT binary)"
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return IntegrityError(what, None, exc, hide_parameters=True)
        driver = self._dbapi.driver_connection
        if driver.is_closed() or isinstance(exc, OSError | asyncpg.InterfaceError):
            lost = driver.is_closed()
            if lost:
                self._conn.invalidate(exc)  # never handed out again
            return OperationalError(
                what, None, exc, hide_parameters=True, connection_invalidated=lost
            )
        return DBAPIError(what, None, exc, hide_parameters=True)
