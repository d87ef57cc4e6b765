"""Building a tracker's engine: drivers' options, SQLite pragmas and paths, connect hooks.

Writers open a SQLite file read-write (WAL) and PostgreSQL with statement timeouts;
readers (``read_only=True``) open SQLite ``mode=ro`` (``immutable`` where a read-only
folder leaves no other choice), so reading never needs, or takes, write access.
"""

from __future__ import annotations

import os
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import URL, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ._config import StorageConfig, driver_not_installed
from ._exceptions import ConfigurationError, StorageError, TrackerError, describe
from ._storage_errors import is_tls_failure, what_to_check
from ._transient import is_transient

__all__ = ["create_engine"]

# Seconds a SQLite connection waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT = 30.0
# Lower bound on one PostgreSQL connect or statement, whatever the outage_timeout.
PG_MIN_STATEMENT_TIMEOUT = 5.0
# Address space for memory-mapped reads; only pages actually read become resident.
SQLITE_MMAP_BYTES = 256 * 1024 * 1024


def create_engine(
    storage: StorageConfig, outage_timeout: float | None, *, read_only: bool = False
) -> AsyncEngine:
    """Build the engine (blocking: call it in a worker thread).

    ``outage_timeout`` bounds each PostgreSQL statement; None (schema upgrades, which
    may rewrite large tables) leaves them unbounded. ``read_only`` opens a SQLite file
    for reading only, so a file or folder this process cannot write can still be read.
    This imports the driver: one that fails to (a broken install; a missing one was
    refused when the URI was resolved) is a :class:`DriverNotInstalledError`. An option
    of the URL the driver cannot take is a :class:`ConfigurationError`; any failure to
    connect, later, is a :class:`StorageError` (see :func:`_connect`).
    """
    try:
        engine = _build_engine(storage, outage_timeout, read_only)
    except TrackerError:
        raise
    except ImportError as exc:
        raise driver_not_installed(storage.url, storage.display, exc) from exc
    except (SQLAlchemyError, TypeError, ValueError) as exc:
        # The dialect reads the URL's options here (a port or cache size that is not a
        # number, a timeout that is not one): nothing has been connected to yet.
        raise ConfigurationError(
            storage.scrub(
                f"storage_uri {storage.display!r} has an option the "
                f"{storage.url.get_driver_name()!r} driver cannot take ({describe(exc)}); "
                "correct or remove it"
            )
        ) from exc
    event.listen(engine.sync_engine, "do_connect", partial(_connect, storage))
    return engine


def _build_engine(
    storage: StorageConfig, outage_timeout: float | None, read_only: bool
) -> AsyncEngine:
    if not storage.is_sqlite:
        connect_args: dict[str, Any] = {}
        if outage_timeout is not None and storage.url.drivername == "postgresql+asyncpg":
            # A server that stops answering (a lock it never grants, a network that drops
            # packets) must fail an attempt within the outage bound, not hang the writer:
            # asyncpg cancels the statement on the server when its command_timeout fires.
            # The floor keeps a tiny bound from failing a merely slow statement.
            bound = max(outage_timeout, PG_MIN_STATEMENT_TIMEOUT)
            connect_args = {
                key: bound for key in ("timeout", "command_timeout") if key not in storage.url.query
            }
        # No pre-ping: on asyncpg it is three round trips (BEGIN, ping, ROLLBACK) before
        # every read. A read that meets a connection the server closed is retried on
        # another instead (CoreBackend.read); the writer replaces its own (Writer).
        return create_async_engine(storage.url, connect_args=connect_args)
    url, pooled = _sqlite_read_url(storage) if read_only else (storage.url, True)
    if url is storage.url:
        _check_sqlite_path(str(storage.url.database))
    # Reads never open a transaction they leave behind, so the pool's reset-on-return
    # rollback (one more thread hop per read) is not needed.
    # A ``?timeout=`` in the URL (seconds, pysqlite's own option) overrides the default.
    connect_args = {} if "timeout" in storage.url.query else {"timeout": SQLITE_BUSY_TIMEOUT}
    pool = {} if pooled else {"poolclass": NullPool}
    engine = create_async_engine(url, connect_args=connect_args, pool_reset_on_return=None, **pool)
    if read_only:
        event.listen(engine.sync_engine, "do_connect", _read_only_connect)
    event.listen(
        engine.sync_engine, "connect", _sqlite_read_pragmas if read_only else _sqlite_pragmas
    )
    return engine


def _sqlite_read_url(storage: StorageConfig) -> tuple[URL, bool]:
    """The URL of read-only SQLite connections (``mode=ro``), and whether they may be
    pooled; ``storage.url`` unchanged when there is no file (an in-memory database).

    A WAL-mode database needs its ``-shm`` file, which SQLite creates beside it; in a
    folder this process cannot write, a connection falls back to ``immutable`` when it
    cannot (:func:`_read_only_connect`). That choice holds only while no writer is at
    work, so such connections are not pooled: each read chooses afresh.
    """
    url = storage.url
    database = url.database
    if not database or database == ":memory:":
        return url, True
    if url.query.get("uri") not in (None, "", "0", "false", "False"):
        return url.update_query_dict({"mode": "ro"}), False  # a SQLite URI: keep its path
    path = Path(database).absolute()
    if not path.is_file():
        _check_sqlite_path(database)  # names a missing directory, or a directory given
        raise StorageError(
            f"cannot read the SQLite database {database!r}: {str(path)!r} does not exist"
        )
    if not os.access(path, os.R_OK):
        raise StorageError(
            f"cannot read the SQLite database {database!r}: {str(path)!r} is not readable "
            "by this process; check its permissions"
        )
    writable = os.access(path.parent, os.W_OK)
    shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
    if not writable and not shm.exists() and _size(wal) > 0:
        raise StorageError(
            f"cannot read the SQLite database {database!r}: its write-ahead log "
            f"{str(wal)!r} holds commits, but the folder is read-only and has no "
            f"{shm.name!r}, so SQLite cannot read them; open the database once where "
            "it can be written (that checkpoints the log), then copy it here"
        )
    query = {**url.query, "uri": "true", "mode": "ro"}
    return url.set(database=path.as_uri(), query=query), writable


def _read_only_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> Any:
    """Open ``mode=ro``; if SQLite cannot create the WAL index (``-shm``) in a read-only
    folder, no writer is at work there (a writer keeps one), so open ``immutable``."""
    connection = dialect.connect(*cargs, **cparams)
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA schema_version")  # the first read opens the WAL index
        finally:
            cursor.close()
    except sqlite3.OperationalError as exc:
        connection.close()
        base, _, query = str(cargs[0]).rpartition("?")
        options = query.split("&")
        if exc.sqlite_errorcode != sqlite3.SQLITE_CANTOPEN or "mode=ro" not in options:
            raise
        options[options.index("mode=ro")] = "immutable=1"
        return dialect.connect(f"{base}?{'&'.join(options)}", *cargs[1:], **cparams)
    return connection


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _connect(storage: StorageConfig, dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Every new connection, whatever the backend: a failure that waiting cannot cure
    (no such database or role, a wrong password, an option the driver refuses) becomes a
    :class:`StorageError` at once, naming the database and what to check, so the writer
    does not retry it for the outage bound. One that waiting may cure (a server down or
    restarting, refused connections) is left as it is: the writer retries it, and
    :class:`._storage_errors.StorageErrors` words it for callers."""
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        if isinstance(exc, TrackerError) or (is_transient(exc) and not is_tls_failure(exc)):
            raise
        raise StorageError(
            storage.scrub(
                f"cannot connect to {storage.display!r}: {describe(exc)}; "
                f"{what_to_check(exc, storage)}"
            )
        ) from exc


def _check_sqlite_path(database: str) -> None:
    # Fail here, naming the path, rather than inside aiosqlite's connect (whose failure
    # path leaves its worker thread posting to the loop after the caller has moved on).
    path = Path(database).absolute()
    if not path.parent.is_dir():
        raise StorageError(
            f"cannot open the SQLite database {database!r}: the directory {str(path.parent)!r} "
            "does not exist; create it first or choose another path"
        )
    if path.is_dir():
        raise StorageError(
            f"cannot open the SQLite database {database!r}: {str(path)!r} is a directory; "
            "give the path of a file, e.g. 'sqlite:///experiments.db'"
        )
    target = path if path.exists() else path.parent
    if not os.access(target, os.R_OK | os.W_OK):
        mounted = " (its file system is mounted read-only)" if _on_read_only_mount(target) else ""
        raise StorageError(
            f"cannot open the SQLite database {database!r} for writing: {str(path)!r} is not "
            f"writable by this process{mounted}; check its permissions or choose another "
            "path (reading alone needs no write access: read_only=True)"
        )


def _on_read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL: a commit survives a crash of the
    # process (not of the machine) without an fsync per commit.
    # mmap: rows a filter picks from all over the file are read from memory, not with
    # one read() call per page.
    # wal_autocheckpoint: checkpoint every 10,000 pages instead of 1,000, so pages that
    # every commit touches (the newest leaves) are copied back once per checkpoint, not
    # ten times; the WAL may grow to ~40 MB between checkpoints.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        f"mmap_size={SQLITE_MMAP_BYTES}",
        "wal_autocheckpoint=10000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("query_only=ON", f"mmap_size={SQLITE_MMAP_BYTES}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
