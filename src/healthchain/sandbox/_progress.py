"""``ProgressBar``: the requests' progress, drawn on a terminal only."""

from __future__ import annotations

import sys

import anyio

__all__ = ["ProgressBar"]


class ProgressBar:
    """A rich progress bar for the requests, drawn only when stderr is a terminal."""

    def __init__(self, num: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        # Refreshed from the loop at most 10 times a second: no refresh thread to join.
        self._progress = Progress(console=Console(stderr=True), auto_refresh=False, transient=True)
        self._task = self._progress.add_task("Sending requests", total=num)
        self._last = 0.0
        self._progress.start()

    @classmethod
    def create(cls, num: int) -> ProgressBar | None:
        return cls(num) if sys.stderr.isatty() else None

    def advance(self) -> None:
        self._progress.advance(self._task)
        now = anyio.current_time()
        if now - self._last >= 0.1:
            self._last = now
            self._progress.refresh()

    def stop(self) -> None:
        self._progress.refresh()
        self._progress.stop()
