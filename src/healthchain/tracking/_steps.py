"""Automatic steps: each metric key's next step, assigned in call order, in bounded memory.

A point logged without a step gets one more than the highest step its key has in its
experiment. The tracker remembers that step for the keys it logged recently (at most
:data:`MAX_STEP_COUNTERS` of them), so the common case is a dictionary lookup at call
time. A key it does not remember (never logged by this tracker, or forgotten to keep
the bound) is queued without a step, and the writer, which applies operations in the
order they were queued, gives it one more than the highest step stored or queued before
it (see :mod:`._metric_ops`). When the first such point is written, the tracker works
out the key's last step from the steps the writer gave it and those queued since, and
assigns steps itself again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ._exceptions import InvalidInputError
from ._metric_input import MAX_STEP

__all__ = ["MAX_STEP_COUNTERS", "StepCounters", "Waiting", "steps_exhausted"]

MAX_STEP_COUNTERS = 65_536
"""(experiment, key) pairs whose last step a tracker remembers; the least recently
logged is forgotten first, and costs one indexed lookup when it is logged again."""


def steps_exhausted(experiment_id: str, key: str) -> InvalidInputError:
    """The error for a point without a step whose key has used the largest one."""
    return InvalidInputError(
        f"metric {key!r} of experiment {experiment_id!r} has reached step {MAX_STEP:,} "
        "(2**63 - 1), the largest; log further points under another key"
    )


class _Counter:
    """What the tracker knows of one key's steps."""

    __slots__ = ("last", "pending", "queued")

    def __init__(self) -> None:
        self.last: int | None = None
        """The highest step stored or queued; None while the writer must find it."""
        self.queued: list[int | None] | None = None
        """While ``last`` is None: the step of each point queued since the first one
        without a step (None for those), in queue order."""
        self.pending = 0
        """Points without a step in ``queued`` whose write has not come back."""


# A point queued without a step: its counter, the counter's ``queued`` then, its index.
Waiting = tuple[_Counter, list[int | None], int]


class StepCounters:
    """The steps of one tracker's metric keys; used on the tracker's event loop only."""

    __slots__ = ("_counters", "_fresh", "maxsize")

    def __init__(self, maxsize: int | None = None) -> None:
        self.maxsize = MAX_STEP_COUNTERS if maxsize is None else maxsize
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()
        self._fresh: dict[str, None] = {}
        """Experiments this tracker started and none of whose counters it has forgotten:
        a key it has no counter for has no point stored, so its first step is 0 with
        nothing read (the writer may then write it with the start, in one statement)."""

    def started(self, experiment_id: str) -> None:
        """``experiment_id`` was just started by this tracker: it has no points yet."""
        fresh = self._fresh
        fresh[experiment_id] = None
        if len(fresh) > self.maxsize:
            del fresh[next(iter(fresh))]

    def __len__(self) -> int:
        return len(self._counters)

    def _counter(self, pair: tuple[str, str]) -> _Counter:
        counters = self._counters
        counter = counters.get(pair)
        if counter is None:
            counter = counters[pair] = _Counter()
            if len(counters) > self.maxsize:
                (forgotten, _), _ = counters.popitem(last=False)
                self._fresh.pop(forgotten, None)  # that key's steps are stored only now
        else:
            counters.move_to_end(pair)
        return counter

    def assign(
        self, experiment_id: str, keys: Sequence[str], step: int | None
    ) -> tuple[list[int | None], list[Waiting]]:
        """The step of each key's new point (None: the writer assigns it), and the points
        left to the writer, for :meth:`settle` once their write is done."""
        steps: list[int | None] = []
        waiting: list[Waiting] = []
        full: str | None = None
        counters = self._counters
        for key in keys:
            pair = (experiment_id, key)
            counter = counters.get(pair)  # _counter's common case inline
            if counter is None:
                counter = self._counter(pair)
            else:
                counters.move_to_end(pair)
            last = counter.last
            if last is None and counter.queued is None and experiment_id in self._fresh:
                last = -1  # a new key of an experiment with no points stored
            if last is not None:
                if step is None:
                    last += 1
                    if last > MAX_STEP:
                        full = key
                elif step > last:
                    last = step
                counter.last = last
                steps.append(last if step is None else step)
                continue
            queued = counter.queued
            if step is None:
                if queued is None:
                    queued = counter.queued = []
                counter.pending += 1
                waiting.append((counter, queued, len(queued)))
                queued.append(None)
            elif queued is not None:  # an explicit step only matters after those
                queued.append(step)
            steps.append(step)
        if full is not None:
            self.settle(waiting, None)
            raise steps_exhausted(experiment_id, full)
        return steps, waiting

    @staticmethod
    def settle(waiting: Sequence[Waiting], assigned: Sequence[int] | None) -> None:
        """The points of ``waiting`` were written with steps ``assigned`` (in order), or
        not written (None). The first written tells each counter its last step: replay
        what was queued after it as the writer will. If none was written, the writer
        looks the step up again next time."""
        for i, (counter, queued, index) in enumerate(waiting):
            if counter.queued is not queued:
                continue  # the counter already knows its last step again
            counter.pending -= 1
            if assigned is not None:
                last = assigned[i]
                for step in queued[index + 1 :]:
                    if step is None:
                        last += 1
                    elif step > last:
                        last = step
                counter.last, counter.queued, counter.pending = last, None, 0
            elif not counter.pending:
                counter.queued = None

    @classmethod
    def settle_when_done(cls, waiting: Sequence[Waiting], future: asyncio.Future[Any]) -> None:
        """:meth:`settle` from the operation's future: a done-callback, so a cancelled
        caller cannot leave a counter waiting for good. A cancelled operation may still
        be written: counting it as not written can only leave a gap in the steps."""
        failed = future.cancelled() or future.exception() is not None
        cls.settle(waiting, None if failed else future.result())
