"""Which failures are the storage's own (a retry may cure them) and which are final."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ._exceptions import TrackerError

__all__ = ["is_transient"]


def is_transient(exc: BaseException) -> bool:
    """True for failures of the storage itself (unreachable, locked), which a retry may cure.

    Anything else is about the operation (a constraint, a bad value) and is final.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.orig or exc
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        return any(word in text for word in _TRANSIENT_SQLITE)
    if _transient_sqlstate(exc):
        return True
    return isinstance(exc, OSError | TimeoutError | ConnectionError) and not isinstance(
        exc, TrackerError
    )


_TRANSIENT_SQLITE = ("locked", "busy", "disk I/O error", "unable to open")
# PostgreSQL error codes a retry may cure: connection exceptions (08), insufficient
# resources such as too many connections (53), the server shutting down or starting up
# (57P), system I/O errors (58); a serialization failure or deadlock (40001, 40P01); a
# standby that is read-only until a failover completes (25006).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57P", "58")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "25006"})


def _transient_sqlstate(exc: BaseException) -> bool:
    # asyncpg's own errors (raised raw while connecting) and SQLAlchemy's translations
    # of them both carry the code as ``sqlstate``.
    state = getattr(exc, "sqlstate", None)
    if not isinstance(state, str):
        return False
    if state.startswith(_TRANSIENT_SQLSTATE_CLASSES) or state in _TRANSIENT_SQLSTATES:
        return True
    # 55000 is a broad class; with this text it is a database closed to new connections
    # (ALTER DATABASE ... ALLOW_CONNECTIONS false), which is how maintenance looks.
    return state == "55000" and "not currently accepting connections" in str(exc)
