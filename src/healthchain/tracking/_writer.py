"""The single writer: one task drains a queue of operations and commits them in batches.

Callers queue an operation and await its future; the future resolves only after the
transaction holding its batch has committed. While one batch is being written the
next one gathers, so under load many callers share one commit (group commit), and
with one caller at a time each operation is still a single round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ._exceptions import StorageError, TrackerClosedError
from ._store import Backend, Op, StartOp

__all__ = ["Writer"]

logger = logging.getLogger("healthchain.tracking")

# Bounds the work done on the loop thread between two awaits (building a batch and
# resolving its futures), which bounds event-loop lag under saturation.
MAX_BATCH = 256


class Writer:
    """Owns the write path of one tracker; lives on the tracker's event loop."""

    def __init__(
        self, backend: Backend, *, on_orphan: Callable[[StartOp], None] | None = None
    ) -> None:
        self._backend = backend
        self._on_orphan = on_orphan
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
                await self._wakeup.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                outcomes: Sequence[Any] = await self._backend.write(batch)
            except asyncio.CancelledError:
                self._fail(batch, TrackerClosedError("the tracker's event loop is shutting down"))
                self._fail(
                    self._pending, TrackerClosedError("the tracker's event loop is shutting down")
                )
                raise
            except Exception as exc:  # the connection itself failed: every op in the batch did
                outcomes = [exc] * len(batch)
            for op, outcome in zip(batch, outcomes, strict=True):
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

    @staticmethod
    def _fail(ops: Sequence[Op], exc: BaseException) -> None:
        for op in ops:
            if op.future is not None and not op.future.done():
                op.future.set_exception(exc)
