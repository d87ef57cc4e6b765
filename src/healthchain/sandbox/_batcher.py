"""``Batcher``: items collected on the event loop, written in batches off the hot path."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

__all__ = ["Batcher", "grow_batch"]

logger = logging.getLogger("healthchain.sandbox")

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects items on the loop and hands them to ``flush`` in batches, off the hot path.

    A batch closes ``interval`` seconds after its first item arrived or when it holds
    ``max_batch`` items, so a fast run makes a few large writes rather than many small
    ones. Draining is shielded from cancellation, and bounded once closed.
    """

    def __init__(
        self,
        what: str,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        bound: float,
        max_batch: int = 256,
        interval: float = 0.2,
    ) -> None:
        self._what = what
        self._bound = bound
        self._dropped = 0
        self._flush = flush
        self._max_batch = max_batch
        self._interval = interval
        self._send, self._receive = anyio.create_memory_object_stream[T](math.inf)
        self._scope = anyio.CancelScope(shield=True)
        self._closing = anyio.Event()
        self.error: BaseException | None = None

    def put(self, item: T) -> None:
        self._send.send_nowait(item)

    def close(self) -> None:
        """No more items: flush what is left now, within a bounded time."""
        self._send.close()
        self._closing.set()
        self._scope.deadline = anyio.current_time() + self._bound

    async def run(self) -> None:
        with self._scope:
            async with self._receive:
                async for item in self._receive:
                    batch = await grow_batch(
                        item, self._receive, self._closing, self._max_batch, self._interval
                    )
                    if self.error is not None:
                        self._dropped += len(batch)  # counted, and reported below
                        continue
                    try:
                        await self._flush(batch)
                    except Exception as exc:
                        logger.error("Writing %d %s failed: %s", len(batch), self._what, exc)
                        self.error = exc
        if self._scope.cancelled_caught and self.error is None:
            self.error = TimeoutError(
                f"writing {self._what} did not finish within {self._bound:g} s"
            )
        if self._dropped:
            logger.error(
                "%d further %s were not written after that failure", self._dropped, self._what
            )


async def grow_batch(
    first: T,
    receive: MemoryObjectReceiveStream[T],
    closing: anyio.Event,
    max_batch: int,
    interval: float,
) -> list[T]:
    """``first`` and what else arrives within ``interval`` seconds, up to ``max_batch``
    items; no waiting once ``closing`` is set."""
    batch = [first]
    _fill(batch, receive, max_batch)
    if len(batch) < max_batch and not closing.is_set():
        # Waiting on an event (never on the stream) cannot lose an item when it times out.
        with anyio.move_on_after(interval):
            await closing.wait()
        _fill(batch, receive, max_batch)
    return batch


def _fill(batch: list[T], receive: MemoryObjectReceiveStream[T], max_batch: int) -> None:
    while len(batch) < max_batch:
        try:
            batch.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return
