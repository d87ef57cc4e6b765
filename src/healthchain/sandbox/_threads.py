"""Running the user's sync code in daemon threads, so an interrupt never waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread

from healthchain._callables import is_async_callable

__all__ = ["DaemonWorker", "as_async", "run_in_daemon_thread"]

T = TypeVar("T")


def as_async(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``func`` as an awaitable callable; a sync one runs in a daemon thread.

    The thread is abandoned on cancellation, so an interrupt never waits for a blocked
    handler (see :func:`run_in_daemon_thread`).
    """
    if is_async_callable(func):
        return func

    async def call_in_thread(*args: Any) -> Any:
        return await run_in_daemon_thread(func, *args)

    return call_in_thread


async def run_in_daemon_thread(func: Callable[..., T], *args: Any) -> T:
    """Call ``func(*args)`` in a new daemon thread; abandon the thread if cancelled.

    Not anyio's worker threads: they are daemons only when the loop's thread is, and
    the interpreter joins the others at exit, so one user function that never returns
    would keep the process from ever exiting. Starting a thread costs about what handing
    a call to a pooled worker does. Calls in flight are bounded by anyio's default
    thread limiter, as ``anyio.to_thread.run_sync`` bounds them.
    """
    future, job = _job(func, args)
    async with anyio.to_thread.current_default_thread_limiter():
        name = f"healthchain sandbox: {getattr(func, '__qualname__', 'call')}"
        threading.Thread(target=job, name=name, daemon=True).start()
        return await future


class DaemonWorker:
    """One daemon thread that runs calls one after another, started on the first.

    For calls that come in a steady stream (a run's batches of ``def`` scorers): each
    costs a hand-off through a queue instead of a new thread, whose start can hold the
    event loop up for milliseconds on a busy machine. Like :func:`run_in_daemon_thread`,
    a cancelled call is abandoned, never waited for; :meth:`close` lets the thread end
    once the calls queued are done.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._started = False

    async def call(self, func: Callable[..., T], *args: Any) -> T:
        future, job = _job(func, args)
        self._jobs.put(job)
        if not self._started:
            self._started = True
            threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return await future

    def close(self) -> None:
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


def _job(
    func: Callable[..., T], args: tuple[Any, ...]
) -> tuple[asyncio.Future[T], Callable[[], None]]:
    """A future on the running loop, and the call for a thread that settles it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the caller gave up on it
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def call() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(func, *args)
        except StopIteration as exc:  # a Future refuses StopIteration
            error = RuntimeError("the function raised StopIteration")
            error.__cause__ = exc
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    return future, call
