"""A daemon thread running an event loop, reachable from other threads through a portal.

anyio's ``start_blocking_portal`` runs its loop on a ``ThreadPoolExecutor`` thread, which
the interpreter joins at exit *before* ``atexit`` handlers run: a tracker left open in a
script would hang the process on exit. This thread is a daemon, and open trackers are
closed by an ``atexit`` handler while it still runs.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ._exceptions import TrackerClosedError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An asyncio loop on a daemon thread, with a :class:`BlockingPortal` into it."""

    def __init__(self, name: str) -> None:
        self._started = threading.Event()
        self._portal: BlockingPortal | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._started.wait()

    @property
    def portal(self) -> BlockingPortal:
        """The portal into the loop; raises once stopped."""
        portal = self._portal
        if portal is None:
            raise TrackerClosedError("the tracker is closed; create a new one to keep recording")
        return portal

    @property
    def running(self) -> bool:
        """True until :meth:`stop` or :meth:`stop_soon`."""
        return self._portal is not None

    def _main(self) -> None:
        anyio.run(self._serve, backend="asyncio")

    async def _serve(self) -> None:
        async with BlockingPortal() as portal:
            self._portal = portal
            self._started.set()
            await portal.sleep_until_stopped()

    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``func(*args)`` on the loop and wait for its result."""
        try:
            return self.portal.call(func, *args)
        except concurrent.futures.CancelledError:
            if self.running:
                raise
            raise TrackerClosedError(
                "the tracker was closed while this call was waiting; create a new one to keep "
                "recording"
            ) from None

    def wrap(self, cm: AbstractAsyncContextManager[T]) -> AbstractContextManager[T]:
        """A synchronous context manager running ``cm`` on the loop."""
        return _SyncContext(self, cm)

    def stop(self, final: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Await ``final()`` on the loop, then stop it and join the thread.

        Calls still waiting on the loop from other threads are cancelled, so stopping
        never waits on a thread that is itself waiting (a daemon thread at exit).
        """
        portal, self._portal = self._portal, None
        if portal is None:
            return
        try:
            if final is not None:
                portal.call(final)
        finally:
            portal.call(portal.stop, True)
            self._thread.join()

    def join(self) -> None:
        """Wait until the thread has ended (after :meth:`stop` or :meth:`stop_soon`)."""
        self._thread.join()

    def stop_soon(self, final: Callable[[], Awaitable[Any]]) -> None:
        """Like :meth:`stop`, without waiting; safe from any thread, the loop's included."""
        portal, self._portal = self._portal, None
        if portal is not None:
            portal.start_task_soon(self._finish, portal, final)

    @staticmethod
    async def _finish(portal: BlockingPortal, final: Callable[[], Awaitable[Any]]) -> None:
        try:
            await final()
        finally:
            await portal.stop(cancel_remaining=True)


class _SyncContext(AbstractContextManager[T]):
    """An async context manager entered and left through the portal, one call each.

    anyio's ``wrap_async_context_manager`` keeps a task on the loop for as long as the
    block is open, and stopping the loop waits for it: a block never left (a daemon
    thread, a suspended generator, ``__enter__`` called by hand) hung the process at
    exit. Here nothing waits on the loop between the two calls; a block left after the
    loop stopped does nothing, since closing the tracker already recorded its end.
    """

    __slots__ = ("_cm", "_loop_thread")

    def __init__(self, loop_thread: LoopThread, cm: AbstractAsyncContextManager[T]) -> None:
        self._loop_thread, self._cm = loop_thread, cm

    def __enter__(self) -> T:
        return self._loop_thread.call(self._cm.__aenter__)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        portal = self._loop_thread._portal
        if portal is None:
            return None
        try:
            return portal.call(self._cm.__aexit__, exc_type, exc, tb)
        except RuntimeError:
            if self._loop_thread.running:
                raise
            return None  # the loop stopped between the check and the call
