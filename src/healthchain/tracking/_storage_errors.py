"""Database and driver errors in words: what failed, on which storage, what to check.

Every message goes through ``StorageConfig.scrub``, so no secret of the URL is shown.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from ._config import StorageConfig
from ._exceptions import StorageError, TrackerError, describe

__all__ = ["StorageErrors", "is_tls_failure", "what_to_check"]


_DATABASE_ERRORS = (SQLAlchemyError, sqlite3.Error, OSError)


class StorageErrors:
    """``with`` block turning database errors into :class:`StorageError` (a plain class:
    it wraps every call on the hot path, where a generator-based one costs more)."""

    __slots__ = ("action", "storage")

    def __init__(self, storage: StorageConfig, action: str) -> None:
        self.storage, self.action = storage, action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, TrackerError) or not isinstance(exc, _DATABASE_ERRORS):
            return
        cause = getattr(exc, "orig", None) or exc
        if self.storage.is_sqlite and "unable to open database file" in str(cause):
            message = (
                f"{self.action}: cannot open the SQLite database {self.storage.url.database!r} "
                f"({cause}); check that its directory exists and is writable"
            )
        else:
            message = f"{self.action} on {self.storage.display!r} failed: {describe(cause)}"
            if not self.storage.is_sqlite and isinstance(cause, OSError):
                message += f"; {_unreachable_hint(cause)}"
        raise StorageError(self.storage.scrub(message)) from exc


def _unreachable_hint(cause: OSError) -> str:
    if isinstance(cause, socket.gaierror):
        return "check the host name in the URL"
    return "check that the database server is running and reachable at that host and port"


_OPTION_EXAMPLES = {
    "asyncpg": " (asyncpg takes e.g. ssl=require, timeout=10, command_timeout=30)",
    "aiosqlite": " (SQLite takes e.g. timeout=30)",
}


def is_tls_failure(exc: BaseException) -> bool:
    # TLS the server does not offer, or a certificate that does not verify, fails the
    # same way next time. (A handshake cut short, SSLEOFError, may be a server going
    # down: that stays an outage.)
    return isinstance(exc, ssl.SSLCertVerificationError) or (
        isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    # The exception and what it wraps: SQLAlchemy 2.1 wraps the driver's own error (e.g.
    # asyncpg's ClientConfigurationError, a ValueError) where 2.0 let it through.
    chain = [exc]
    while len(chain) < 8:
        inner = getattr(chain[-1], "orig", None) or chain[-1].__cause__
        if not isinstance(inner, BaseException) or inner in chain:
            break
        chain.append(inner)
    return chain


def what_to_check(exc: BaseException, storage: StorageConfig) -> str:
    if is_tls_failure(exc):
        return (
            "check the URL's ssl option (ssl=disable, prefer, require, verify-ca or "
            "verify-full) against what the server offers, and its certificates"
        )
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state == "3D000":
        return "check the database name in the URL, or create that database first"
    if isinstance(state, str) and state.startswith("28"):
        return (
            "check the user name and password (given in the URL, a ?password= option, "
            "PGPASSWORD or ~/.pgpass) and the server's pg_hba.conf"
        )
    if state == "42501":
        return "check that this user may connect to that database (GRANT CONNECT)"
    if any(
        isinstance(e, TypeError | ValueError | ArithmeticError | LookupError) for e in _chain(exc)
    ):
        example = _OPTION_EXAMPLES.get(storage.url.get_driver_name(), "")
        return (
            "check the options after '?' in the URL: one is not taken by the driver, or has "
            f"a value it refuses{example}"
        )
    return "check the URL, and that the server accepts connections from this host"
