"""SIGINT/SIGTERM during a sandbox run: stop it, record INTERRUPTED, then die of the signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = ["FORCE_AFTER", "Interrupt"]

logger = logging.getLogger("healthchain.sandbox")

FORCE_AFTER = 3
"""Signals it takes to exit at once, without waiting for INTERRUPTED to be written.

Not two: GNU ``timeout`` (and other supervisors) send SIGTERM to the process and then to
its process group, so one stop request often arrives as two signals 0-1 ms apart.
"""


@dataclass(slots=True)
class Interrupt:
    """SIGINT/SIGTERM handling for one run: cancel the run, then re-deliver the signal.

    The handler only schedules the cancellation on the run's loop, so the run can write
    INTERRUPTED and stop the service; once the handlers are restored, :meth:`redeliver`
    raises the signal again for the previous handler (``KeyboardInterrupt`` for Ctrl-C,
    termination for SIGTERM). A second signal while the run winds down is noted and
    changes nothing; the third (:data:`FORCE_AFTER`) hands the signal to the previous
    handler at once. The wind-down itself is bounded (service stop, final write).
    """

    signum: int | None = None
    received: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _cancel: Callable[[], None] | None = None
    _previous: dict[int, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
            yield
        finally:
            self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        name = signal.Signals(signum).name
        if self.received >= FORCE_AFTER:
            logger.warning("Received %s %d times: exiting without waiting", name, self.received)
            self._restore()
            signal.raise_signal(signum)
            return
        if self.signum is not None:
            logger.warning(
                "Received %s again: still stopping the sandbox run to record it INTERRUPTED; "
                "send it once more to exit at once",
                name,
            )
            return
        self.signum = signum
        logger.warning("Received %s: stopping the sandbox run", name)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._fire)

    def arm(self, cancel: Callable[[], None]) -> None:
        """On the run's loop: ``cancel`` is what a signal triggers."""
        self._cancel = cancel
        self._loop = asyncio.get_running_loop()
        if self.signum is not None:
            cancel()

    def disarm(self) -> None:
        self._loop = None
        self._cancel = None

    def _fire(self) -> None:
        if self._cancel is not None:
            self._cancel()

    def redeliver(self) -> None:
        """Raise the received signal again, now that the previous handlers are back."""
        if self.signum is not None:
            signal.raise_signal(self.signum)
