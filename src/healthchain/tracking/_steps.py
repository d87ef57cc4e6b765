"""Automatic steps: each metric key's next step, assigned in call order, in bounded memory.

A point logged without a step gets one more than the highest step its key has in its
experiment. The tracker remembers that step for the keys it logged recently (at most
:data:`MAX_STEP_COUNTERS` of them), so the common case is a dictionary lookup at call
time. A key it does not remember (never logged by this tracker, or forgotten to keep
the bound) is queued without a step; the writer, which applies operations in the order
they were queued, gives it one more than the highest step stored or queued before it
(see :func:`._operations.resolve_steps`). Once those points are written, the key is
remembered again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_STEP_COUNTERS", "StepCounters"]

MAX_STEP_COUNTERS = 65_536
"""(experiment, key) pairs whose last step a tracker remembers; the least recently
logged is forgotten first, and costs one indexed lookup when it is logged again."""


class _Counter:
    """What the tracker knows of one key's steps."""

    __slots__ = ("last", "pending", "seen", "settled")

    def __init__(self) -> None:
        self.last: int | None = None
        """The highest step stored or queued, or None while the writer must find it."""
        self.pending = 0
        """Operations queued without a step for this key, not yet written."""
        self.seen = -1
        """The highest step queued while ``pending``: explicit, or assigned by the writer."""
        self.settled = False
        """Whether the writer assigned a step since ``pending`` was last 0."""


class StepCounters:
    """The steps of one tracker's metric keys; used on the tracker's event loop only."""

    __slots__ = ("_counters", "maxsize")

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = MAX_STEP_COUNTERS if maxsize is None else maxsize
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counters)

    def _counter(self, experiment_id: str, key: str) -> _Counter:
        counters = self._counters
        pair = (experiment_id, key)
        counter = counters.get(pair)
        if counter is None:
            counter = counters[pair] = _Counter()
            if len(counters) > self.maxsize:
                counters.popitem(last=False)
        else:
            counters.move_to_end(pair)
        return counter

    def assign(
        self, experiment_id: str, keys: Sequence[str], step: int | None
    ) -> tuple[list[int | None], list[_Counter]]:
        """The step of each key's new point (None: the writer assigns it), and the
        counters waiting for the writer, to pass to :meth:`settle` once it has written."""
        steps: list[int | None] = []
        waiting: list[_Counter] = []
        for key in keys:
            counter = self._counter(experiment_id, key)
            if counter.pending or counter.last is None:
                if step is None:
                    counter.pending += 1
                    waiting.append(counter)
                elif step > counter.seen:
                    counter.seen = step
                steps.append(step)
            elif step is None:
                counter.last += 1
                steps.append(counter.last)
            else:
                if step > counter.last:
                    counter.last = step
                steps.append(step)
        return steps, waiting

    @staticmethod
    def settle(waiting: Sequence[_Counter], assigned: Sequence[int] | None) -> None:
        """An operation queued with ``waiting`` (see :meth:`assign`) was written, the
        writer assigning ``assigned`` (one step per counter, in order), or failed (None).
        A counter knows its last step again once no other such operation is queued."""
        for i, counter in enumerate(waiting):
            counter.pending -= 1
            if assigned is not None:
                counter.seen = max(counter.seen, assigned[i])
                counter.settled = True
            if not counter.pending:
                # When every such write failed, the writer looks the step up again.
                counter.last = counter.seen if counter.settled else None
                counter.seen, counter.settled = -1, False

    @classmethod
    def settle_when_done(cls, waiting: Sequence[_Counter], future: asyncio.Future[Any]) -> None:
        """:meth:`settle` from the operation's future: a done-callback, so a cancelled
        caller cannot leave a counter waiting for good."""
        failed = future.cancelled() or future.exception() is not None
        cls.settle(waiting, None if failed else future.result())
