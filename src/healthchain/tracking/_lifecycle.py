"""Opening and closing a tracker on its event loop.

:class:`TrackerLifecycle` owns what an open tracker holds: the engine and backend, the
single writer and the heartbeat (writers only), the experiments it has open, and the
close that lands queued writes and ends those experiments INTERRUPTED.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from ._backends import Backend, CoreBackend, SqliteBackend
from ._codecs import Codec, SqliteCodec
from ._config import resolve_storage_uri
from ._engine import create_engine
from ._exceptions import (
    ExperimentNotFoundError,
    ExperimentStateError,
    StorageError,
    TrackerClosedError,
    TrackerError,
    describe,
)
from ._executors import Executor
from ._migrate import check_schema, ensure_schema
from ._operations import BeatOp, Op, StartOp
from ._records import ExperimentStatus
from ._settings import TrackerSettings
from ._storage_errors import StorageErrors
from ._update_ops import EndOp
from ._validation import utcnow, validate_id
from ._writer import Writer

__all__ = ["CLOSED_WHILE_OPEN", "PROCESS_EXITED", "TrackerLifecycle"]

logger = logging.getLogger("healthchain.tracking")

T = TypeVar("T")
V = TypeVar("V")

CLOSED_WHILE_OPEN = "the tracker was closed while the experiment was open"
PROCESS_EXITED = "the process exited while the experiment was open"


class TrackerLifecycle:
    """The open/close half of :class:`~healthchain.tracking.AsyncExperimentTracker`."""

    def __init__(self, settings: TrackerSettings) -> None:
        self._settings = settings
        # Constructors run on the loop: the driver is only looked for here, and imported
        # (tens of milliseconds for asyncpg) with the engine, in a worker thread.
        self._storage = resolve_storage_uri(settings.storage_uri, import_driver=False)
        self._read_only = settings.read_only
        self._heartbeat_interval = settings.heartbeat_interval
        # The engine is built on first use, in a worker thread: building it resolves the
        # SQLite path against the working directory, a blocking call.
        self._engine: AsyncEngine | None = None
        self._backend: Backend | None = None
        self._codec: Codec = SqliteCodec() if self._storage.is_sqlite else Codec()
        self._writer: Writer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._closed = False
        self._running: set[str] = set()
        self._closed_over: set[str] = set()  # ended INTERRUPTED by closing the tracker
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Self:
        try:
            await self._open()
        except BaseException:
            # ``async with`` never hands over a tracker that failed to open (no such
            # database, a server down): release what it took rather than leave it to __del__.
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Write everything queued, stop the heartbeat and release the engine. Idempotent.

        Experiments of this tracker still RUNNING (a ``track()`` block not yet left, a
        start without its end) are ended INTERRUPTED, with an error saying the tracker was
        closed while they were open; a block left afterwards records nothing more.

        A cancellation arriving meanwhile waits until this is done, then propagates: a
        tracker closed from a cancelled task still lands its queued writes and returns
        its connections, instead of leaving them to the garbage collector.
        """
        await self._shutdown(CLOSED_WHILE_OPEN)

    async def _shutdown(self, reason: str) -> None:
        """:meth:`aclose`, ending open experiments INTERRUPTED with ``reason`` as error."""
        if self._closed:
            return
        self._closed = True
        # Synchronously, before any await: a block left meanwhile must see its end taken.
        ends = self._interrupt_open(reason)
        await _run_to_completion(self._release(ends))

    def _interrupt_open(self, reason: str) -> list[tuple[str, asyncio.Future[Any]]]:
        """Queue an INTERRUPTED end for each experiment still open; returns their futures."""
        open_ids, self._running = self._running, set()
        self._closed_over |= open_ids
        writer = self._writer
        if writer is None or not open_ids:
            return []
        now = self._codec.time(utcnow())
        ends = []
        for experiment_id in open_ids:
            op = EndOp.of(experiment_id, ExperimentStatus.INTERRUPTED, now, reason)
            try:
                ends.append((experiment_id, writer.submit(op)))
            except TrackerError as exc:
                logger.error(
                    "could not record INTERRUPTED for experiment %s: %s", experiment_id, exc
                )
        return ends

    async def _release(self, ends: Sequence[tuple[str, asyncio.Future[Any]]] = ()) -> None:
        writer, self._writer = self._writer, None
        for task in list(self._tasks):
            if task.get_name() == "healthchain-heartbeat":
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if writer is not None:
                await writer.aclose()
            for experiment_id, end in ends:
                failure = end.exception() if end.done() and not end.cancelled() else None
                # Already ended elsewhere (reaped, or ended by another tracker), or its
                # start failed and was reported to its caller: nothing lost here.
                if failure is not None and not isinstance(
                    failure, ExperimentStateError | ExperimentNotFoundError
                ):
                    logger.error(
                        "could not record INTERRUPTED for experiment %s: %s",
                        experiment_id,
                        describe(failure),
                    )
            if self._backend is not None:
                await self._backend.aclose()
        finally:
            if self._engine is not None:
                await self._engine.dispose()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_loop", None) is not None and not self._closed:
            _warn(
                f"unclosed {self!r}; use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
            )

    async def _ready(self) -> Writer:
        writer = self._writer
        if writer is not None and self._loop is asyncio.get_running_loop():
            return writer
        if self._read_only:
            raise StorageError(
                f"{self!r} was opened with read_only=True; "
                "open a tracker without read_only to record experiments"
            )
        await self._open()
        assert self._writer is not None
        return self._writer

    async def _open(self) -> Backend:
        """Build the engine and check (reader) or bring to head (writer) the schema, once."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise TrackerClosedError(f"{self!r} is closed; create a new tracker to keep recording")
        if self._opened and self._loop is loop and self._backend is not None:
            return self._backend
        if self._loop is None:
            self._loop, self._open_lock = loop, asyncio.Lock()
        elif self._loop is not loop:
            raise TrackerClosedError(
                f"{self!r} belongs to another event loop; an async engine serves one loop, "
                "so create one tracker per loop (or use ExperimentTracker from threads)"
            )
        assert self._open_lock is not None
        async with self._open_lock:
            if not self._opened:
                if self._engine is None:
                    self._engine = await anyio.to_thread.run_sync(
                        partial(
                            create_engine,
                            self._storage,
                            self._settings.outage_timeout,
                            read_only=self._read_only,
                        )
                    )
                    self._backend = (SqliteBackend if self._storage.is_sqlite else CoreBackend)(
                        self._engine
                    )
                assert self._backend is not None
                with self._storage_errors("opening the database"):
                    if self._read_only:
                        await check_schema(self._engine, self._storage.display)
                    else:
                        await ensure_schema(self._engine)
                if self._closed:  # closed while we were migrating
                    raise TrackerClosedError(f"{self!r} was closed while opening")
                if not self._read_only:
                    self._writer = Writer(
                        self._backend,
                        self._settings,
                        on_orphan=self._end_orphan,
                        where=self._storage.display,
                    )
                    self._spawn(self._heartbeat(), "healthchain-heartbeat")
                self._opened = True
            assert self._backend is not None
            return self._backend

    async def _reader(self) -> Backend:
        return await self._open()

    async def _read_experiment(
        self, experiment_id: str, action: str, fn: Callable[[Executor], T | None]
    ) -> T:
        """Run ``fn`` as one read; None from it means no experiment has ``experiment_id``."""
        backend = await self._reader()
        with self._storage_errors(action):
            found = await backend.read(fn)
        if found is None:
            raise ExperimentNotFoundError(experiment_id)
        return found

    async def _write_checked(
        self,
        experiment_id: str,
        action: str,
        values: object,
        check: Callable[[object], V],
        op_of: Callable[[V], Op],
    ) -> None:
        """Check the id, then ``values`` (``check`` returns them checked, or raises);
        none left writes nothing, else ``op_of`` them is written and waited for.

        ``end_experiment`` and ``set_files_dir`` spell this out instead: an end checks its
        status before the id, writes a None error, and stays open if refused; a folder is
        resolved in a worker thread between the check and the write.
        """
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        checked = check(values)
        if not checked:
            return
        writer = await self._ready()
        op = op_of(checked)
        with self._storage_errors(action):
            await writer.submit(op)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _storage_errors(self, action: str) -> StorageErrors:
        """Translate driver and SQLAlchemy errors into :class:`StorageError`, in one place."""
        return StorageErrors(self._storage, action)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            writer = self._writer
            if writer is None or not self._running:
                continue
            beat = self._codec.time(utcnow())
            op = BeatOp.of(self._running, beat)
            try:
                with self._storage_errors("heartbeat"):
                    await writer.submit(op)
            except TrackerError as exc:
                logger.warning("heartbeat not recorded: %s", exc)

    def _end_orphan(self, op: StartOp) -> None:
        # A start whose caller was cancelled before it committed: the row exists but
        # nobody holds its id, so end it rather than leave it RUNNING forever.
        end = EndOp.of(
            op.experiment["id"],
            ExperimentStatus.INTERRUPTED,
            self._codec.time(utcnow()),
            "start_experiment was cancelled before it returned",
        )
        if self._writer is not None:
            self._writer.submit(end).add_done_callback(lambda f: f.exception())


async def _run_to_completion(work: Awaitable[None]) -> None:
    """Await ``work`` to its end even if the caller is cancelled, then re-raise that.

    anyio's shield stops its own (level-triggered) cancellation but not asyncio's
    ``Task.cancel()``; waiting on a separate task covers the latter, since a cancelled
    ``asyncio.wait`` leaves the task it waits for running.
    """
    task = asyncio.ensure_future(work)
    interrupted: asyncio.CancelledError | None = None
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError as exc:
                interrupted = exc
    if interrupted is not None and (task.cancelled() or task.exception() is None):
        raise interrupted
    task.result()  # a failure to close outranks the cancellation: it must not be lost
