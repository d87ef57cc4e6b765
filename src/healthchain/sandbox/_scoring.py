"""``Scoring``: a run's ``@score`` methods called on each valid response, off the hot path.

Responses are queued as the client takes them and scored in batches by one task, so
neither the service's answers nor the client's next request ever wait for a scorer. A
batch closes ``interval`` seconds after its first response arrived, or at ``max_batch``
responses, or when the run has sent its last request (as ``Batcher``'s do): a fast run
pays one hand-off per batch to one worker thread for all its ``def`` scorers together,
not one per response and scorer. ``async def`` scorers run on the loop, beside the
thread: each goes through the batch in one task while its calls return without waiting,
and in up to ``max_concurrency`` tasks once they wait (a judge calling a model). A batch
at a time bounds the work in flight.
"""

from __future__ import annotations

import asyncio
import functools
import math
import numbers
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from healthchain._callables import is_async_callable, member
from healthchain.tracking import InvalidInputError
from healthchain.tracking._metric_input import validate_scores
from healthchain.tracking._validation import show

from ._batcher import grow_batch
from ._run_metrics import AUTOMATIC_METRICS
from ._threads import DaemonWorker

__all__ = ["Scorer", "Scoring"]

_FLOAT_MAX = sys.float_info.max
_Item = tuple[int, Any, Any]
"""(request index, request model, response model)."""


@dataclass(frozen=True, slots=True)
class Scorer:
    """One ``@score`` method, bound to the use case."""

    name: str
    func: Callable[[Any, Any], Any]
    on_loop: bool
    """True for ``async def``: awaited on the loop; else called in a worker thread."""

    @classmethod
    def of(cls, use_case: object, name: str) -> Scorer:
        func = member(use_case, name)
        return cls(name, func, is_async_callable(func))


class _Raised:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


@dataclass(slots=True)
class _Failures:
    count: int
    first: str


class Scoring:
    """Calls the scorers on each response :meth:`put` here; ``on_scored(index, scores)``
    sees each response's merged scores, on the loop, once every scorer has run on it."""

    def __init__(
        self,
        scorers: Sequence[Scorer],
        on_scored: Callable[[int, dict[str, float]], None],
        *,
        max_batch: int = 128,
        interval: float = 0.05,
        max_concurrency: int = 16,
    ) -> None:
        self._scorers = tuple(scorers)
        self._in_thread = tuple(s for s in scorers if not s.on_loop)
        self._on_loop = tuple(s for s in scorers if s.on_loop)
        self._on_scored = on_scored
        self._max_batch = max_batch
        self._interval = interval
        self._max_concurrency = max_concurrency
        self._thread = DaemonWorker("healthchain sandbox: scorers")
        self._send, self._receive = anyio.create_memory_object_stream[_Item](math.inf)
        self._closing = anyio.Event()
        self._done = anyio.Event()
        # Each score name belongs to the scorer that first returned it; a scorer's own
        # name is its own from the start.
        self._owners = {scorer.name: scorer.name for scorer in scorers}
        self._failures: dict[str, _Failures] = {}
        self.scored = 0
        """Responses every scorer has run on."""

    def put(self, index: int, request: Any, response: Any) -> None:
        """Queue a valid response (and its request) for scoring; never waits."""
        self._send.send_nowait((index, request, response))

    def close(self) -> None:
        """No more responses, and those queued will not be scored (a run cut short)."""
        self._send.close()

    async def finish(self) -> None:
        """No more responses: return once those queued are scored."""
        self._send.close()
        self._closing.set()
        await self._done.wait()

    @property
    def error(self) -> str | None:
        """Each failing scorer, how often it failed and its first failure; None if none."""
        if not self._failures:
            return None
        return "; ".join(
            f"scorer {name!r} failed on {failures.count} of {self.scored} responses; "
            f"first: {failures.first}"
            for name, failures in self._failures.items()
        )

    async def run(self) -> None:
        """Score what is queued, batch after batch, until :meth:`finish`."""
        try:
            async with self._receive:
                async for item in self._receive:
                    await self._score(
                        await grow_batch(
                            item, self._receive, self._closing, self._max_batch, self._interval
                        )
                    )
        finally:
            self._thread.close()
        self._done.set()

    async def _score(self, batch: list[_Item]) -> None:
        # results[scorer][item]: what the scorer returned for the item, or _Raised
        results: dict[str, list[Any]] = {s.name: [None] * len(batch) for s in self._scorers}

        async def in_thread() -> None:
            for name, values in zip(
                (s.name for s in self._in_thread),
                await self._thread.call(_call_all, self._in_thread, batch),
                strict=True,
            ):
                results[name] = values

        calls: list[Callable[[], Coroutine[Any, Any, None]]] = [
            functools.partial(self._await_each, scorer, batch, results[scorer.name])
            for scorer in self._on_loop
        ]
        if self._in_thread:
            calls.append(in_thread)
        if len(calls) == 1:
            await calls[0]()
        else:
            async with anyio.create_task_group() as tg:
                for call in calls:
                    tg.start_soon(call)
        for i, (index, _, _) in enumerate(batch):
            scores: dict[str, float] = {}
            for scorer in self._scorers:
                self._merge(scorer.name, index, results[scorer.name][i], scores)
            self.scored += 1
            self._on_scored(index, scores)

    async def _await_each(self, scorer: Scorer, batch: list[_Item], values: list[Any]) -> None:
        """``scorer`` on each response of ``batch``, into ``values``: in one task while its
        calls return without waiting; each time a call waits (a judge calling a model),
        one more task takes the next response, up to ``max_concurrency`` tasks."""
        loop = asyncio.get_running_loop()
        indices = iter(range(len(batch)))
        workers = 1

        def another() -> None:
            nonlocal workers
            if workers < self._max_concurrency:
                workers += 1
                tg.start_soon(work)

        async def work() -> None:
            for i in indices:
                _, request, response = batch[i]
                # Runs only if the call gives the loop a turn before it returns.
                canary = loop.call_soon(another)
                try:
                    values[i] = await scorer.func(request, response)
                except Exception as exc:
                    values[i] = _Raised(exc)
                canary.cancel()

        async with anyio.create_task_group() as tg:
            await work()

    def _merge(self, scorer: str, index: int, value: Any, scores: dict[str, float]) -> None:
        """Add what ``scorer`` returned for request ``index`` to its ``scores``, or count
        a failure."""
        # The common cases first, checked as cheaply as the full checks below would pass
        # them: a number under the scorer's own name (valid, and its own from the start),
        # or a dict of floats under names this scorer returned before.
        if value.__class__ is float:
            scores[scorer] = value
            return
        if value.__class__ is int and -_FLOAT_MAX <= value <= _FLOAT_MAX:
            scores[scorer] = float(value)
            return
        owners = self._owners
        if value.__class__ is dict and all(
            v.__class__ is float and owners.get(k) == scorer for k, v in value.items()
        ):
            scores.update(value)
            return
        try:
            if isinstance(value, _Raised):
                raise _Failed(f"raised {type(value.exc).__name__}: {value.exc}")
            if not isinstance(value, bool) and isinstance(value, numbers.Real):
                checked = validate_scores({scorer: value}, "the score")
            elif isinstance(value, Mapping):
                checked = validate_scores(value, "the scores")
            else:
                raise _Failed(
                    f"returned {show(value)}; a scorer returns a number or a mapping of "
                    "score names to numbers"
                )
            for name in checked:
                self._check_name(scorer, name)
        except (_Failed, InvalidInputError) as exc:
            failures = self._failures.get(scorer)
            if failures is None:
                self._failures[scorer] = _Failures(1, f"request {index}: {exc}")
            else:
                failures.count += 1
            return
        scores.update(checked)

    def _check_name(self, scorer: str, name: str) -> None:
        if name in AUTOMATIC_METRICS:
            raise _Failed(
                f"returned the score {name!r}, the name of a metric every run logs; "
                "rename the score"
            )
        owner = self._owners.setdefault(name, scorer)
        if owner != scorer:
            raise _Failed(
                f"returned the score {name!r}, which scorer {owner!r} returns too; give "
                "each score its own name"
            )


class _Failed(Exception):
    """What a scorer did wrong on one response."""


def _call_all(scorers: Sequence[Scorer], batch: list[_Item]) -> list[list[Any]]:
    """Each sync scorer on each response of ``batch``, in a worker thread."""
    out: list[list[Any]] = []
    for scorer in scorers:
        values: list[Any] = []
        for _, request, response in batch:
            try:
                values.append(scorer.func(request, response))
            except Exception as exc:
                values.append(_Raised(exc))
        out.append(values)
    return out
