"""The single writer: one task drains a queue of operations and commits them in batches.

Callers queue an operation and await its future; the future resolves only after the
transaction holding its batch has committed. While one batch is being written the
next one gathers, so under load many callers share one commit (group commit), and
with one caller at a time each operation is still a single round trip.

When the storage itself fails (unreachable, locked past the busy timeout) the batch is
kept and retried with exponential backoff while new operations queue up behind it, up
to ``max_queued`` of them. If storage stays away longer than ``outage_timeout`` seconds,
or the queue overflows, the writes not recorded are failed with a :class:`StorageError`
and logged as an error, by kind and count: never a silent loss, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ._backends import Backend
from ._batch import describe_ops
from ._exceptions import StorageError, TrackerClosedError, describe
from ._operations import Op, StartOp
from ._settings import TrackerSettings
from ._transient import is_transient

__all__ = ["Writer"]

logger = logging.getLogger("healthchain.tracking")

# Bounds the work done on the loop thread between two awaits (building a batch and
# resolving its futures), which bounds event-loop lag under saturation.
MAX_BATCH = 256
# Callers woken per loop iteration when a batch commits.
WAKE_CHUNK = 16
# Loop steps without a new write after which a writer cancelled by the loop's shutdown
# stops; a task cancelled at the same time queues its last write within two.
SHUTDOWN_IDLE_STEPS = 8


class Writer:
    """Owns the write path of one tracker; lives on the tracker's event loop."""

    def __init__(
        self,
        backend: Backend,
        settings: TrackerSettings,
        *,
        on_orphan: Callable[[StartOp], None] | None = None,
        where: str = "storage",
    ) -> None:
        self._backend = backend
        self._on_orphan = on_orphan
        self._outage_timeout = settings.outage_timeout
        self._max_queued = settings.max_queued_writes
        self._where = where
        self._outage_since: float | None = None
        self._pending: list[Op] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="healthchain-writer")

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op``; the returned future holds its result once committed."""
        if self._closing:
            raise TrackerClosedError("the tracker is closing; no further writes are accepted")
        if self._task.done():
            raise StorageError("the tracker's writer has stopped; close and reopen the tracker")
        if len(self._pending) >= self._max_queued:
            message = (
                f"{describe_ops([op])} not recorded: {len(self._pending)} writes are already "
                f"queued while {self._where} is unavailable (the bound is {self._max_queued})"
            )
            logger.error("%s", message)
            raise StorageError(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        op.future = future
        self._pending.append(op)
        self._wakeup.set()
        return future

    async def aclose(self) -> None:
        """Write everything queued so far, then stop."""
        self._closing = True
        self._wakeup.set()
        await self._task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                try:
                    await self._wakeup.wait()
                except asyncio.CancelledError:
                    await self._last_writes()
                    raise
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                outcomes: Sequence[Any] = await self._write(batch)
            except asyncio.CancelledError:
                closing = TrackerClosedError("the tracker's event loop is shutting down")
                self._fail(batch, closing)
                self._fail(self._pending, closing)
                raise
            await self._deliver(batch, outcomes)

    async def _last_writes(self) -> None:
        """Cancelled while idle: write what the tasks cancelled along with us still queue.

        ``asyncio.run()`` ends by cancelling every task at once; a task leaving ``track()``
        queues its INTERRUPTED end a step or two later. Serve until no write has come for
        a few loop steps, then refuse more.
        """
        try:
            idle = 0
            while idle < SHUTDOWN_IDLE_STEPS:
                if not self._pending:
                    idle += 1
                    await asyncio.sleep(0)
                    continue
                idle = 0
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._deliver(batch, await self._write(batch))
        finally:
            self._closing = True
            self._fail(self._pending, TrackerClosedError("the tracker's event loop has stopped"))
            self._pending.clear()
            with contextlib.suppress(Exception):  # hand back the connection while we can
                await self._backend.aclose()

    async def _deliver(self, batch: list[Op], outcomes: Sequence[Any]) -> None:
        for n, (op, outcome) in enumerate(zip(batch, outcomes, strict=True), 1):
            if n % WAKE_CHUNK == 0:
                # Let the woken callers (and everyone else) run before waking more:
                # a batch no longer wakes all its callers in one loop iteration.
                await asyncio.sleep(0)
            future = op.future
            if future is None or future.done():
                if (
                    self._on_orphan is not None
                    and isinstance(op, StartOp)
                    and not isinstance(outcome, BaseException)
                ):
                    self._on_orphan(op)  # its caller was cancelled; the row exists
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _write(self, batch: list[Op]) -> Sequence[Any]:
        """Write ``batch``, retrying while the storage itself is failing."""
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            attempt = loop.time()
            try:
                outcomes = await self._backend.write(batch)
            except Exception as exc:
                if not is_transient(exc):
                    return [exc] * len(batch)
                if self._outage_since is None:
                    # From when the failed attempt began: an attempt that hung until its
                    # own timeout already spent that time of the outage bound.
                    self._outage_since = attempt
                    logger.warning(
                        "%s unavailable (%s); retrying, %d writes queued",
                        self._where,
                        describe(exc),
                        len(batch) + len(self._pending),
                    )
                if loop.time() - self._outage_since > self._outage_timeout:
                    return self._give_up(batch, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self._outage_since is not None:
                logger.warning(
                    "%s is back after %.1f s; queued writes recorded",
                    self._where,
                    loop.time() - self._outage_since,
                )
                self._outage_since = None
            return outcomes

    def _give_up(self, batch: list[Op], cause: Exception) -> Sequence[Any]:
        lost = [*batch, *self._pending]
        self._pending.clear()
        message = (
            f"{self._where} unavailable for over {self._outage_timeout:g} s "
            f"({describe(cause)}); "
            f"not recorded: {describe_ops(lost)}"
        )
        logger.error("%s", message)
        self._outage_since = None
        error = StorageError(message)
        error.__cause__ = cause
        self._fail(lost[len(batch) :], error)
        return [error] * len(batch)

    @staticmethod
    def _fail(ops: Sequence[Op], exc: BaseException) -> None:
        for op in ops:
            if op.future is not None and not op.future.done():
                op.future.set_exception(exc)
