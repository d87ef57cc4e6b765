"""A daemon thread running an event loop, reachable from other threads through a portal.

anyio's ``start_blocking_portal`` runs its loop on a ``ThreadPoolExecutor`` thread, which
the interpreter joins at exit *before* ``atexit`` handlers run: a tracker left open in a
script would hang the process on exit. This thread is a daemon, and open trackers are
closed by an ``atexit`` handler while it still runs.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
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
        return self.portal.call(func, *args)

    def wrap(self, cm: AbstractAsyncContextManager[T]) -> AbstractContextManager[T]:
        """A synchronous context manager running ``cm`` on the loop."""
        return self.portal.wrap_async_context_manager(cm)

    def stop(self, final: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Await ``final()`` on the loop, then stop it and join the thread."""
        portal, self._portal = self._portal, None
        if portal is None:
            return
        try:
            if final is not None:
                portal.call(final)
        finally:
            portal.call(portal.stop)
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
            await portal.stop()
