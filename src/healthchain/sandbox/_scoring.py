"""``Scoring``: a run's ``@score`` methods called on each valid response, off the hot path.

Responses are queued as the client takes them and scored in batches by one task, so
neither the service's answers nor the client's next request ever wait for a scorer. A
batch closes ``interval`` seconds after its first response arrived, or at ``max_batch``
responses, or when the run has sent its last request (as ``Batcher``'s do): a fast run
pays one thread hop per batch for all its ``def`` scorers together, not one per response
and scorer. ``async def`` scorers run on the loop, concurrently, one task per response
and scorer of the batch; a batch at a time bounds the work in flight.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from healthchain._callables import is_async_callable
from healthchain.tracking import InvalidInputError
from healthchain.tracking._metric_input import validate_scores
from healthchain.tracking._validation import show

from ._batcher import grow_batch
from ._run_metrics import AUTOMATIC_METRICS
from ._threads import run_in_daemon_thread

__all__ = ["Scorer", "Scoring"]

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
        func = getattr(use_case, name)
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
    ) -> None:
        self._scorers = tuple(scorers)
        self._in_thread = tuple(s for s in scorers if not s.on_loop)
        self._on_loop = tuple(s for s in scorers if s.on_loop)
        self._on_scored = on_scored
        self._max_batch = max_batch
        self._interval = interval
        self._send, self._receive = anyio.create_memory_object_stream[_Item](math.inf)
        self._closing = anyio.Event()
        self._done = anyio.Event()
        self._owners: dict[str, str] = {}
        self._failures: dict[str, _Failures] = {}
        self.scored = 0
        """Responses every scorer has run on."""

    def put(self, index: int, request: Any, response: Any) -> None:
        """Queue a valid response (and its request) for scoring; never waits."""
        self._send.send_nowait((index, request, response))

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
        async with self._receive:
            async for item in self._receive:
                await self._score(
                    await grow_batch(
                        item, self._receive, self._closing, self._max_batch, self._interval
                    )
                )
        self._done.set()

    async def _score(self, batch: list[_Item]) -> None:
        # results[scorer][item]: what the scorer returned for the item, or _Raised
        results: dict[str, list[Any]] = {s.name: [None] * len(batch) for s in self._scorers}

        async def in_thread() -> None:
            for name, values in zip(
                (s.name for s in self._in_thread),
                await run_in_daemon_thread(_call_all, self._in_thread, batch),
                strict=True,
            ):
                results[name] = values

        async def on_loop(scorer: Scorer, i: int) -> None:
            _, request, response = batch[i]
            try:
                results[scorer.name][i] = await scorer.func(request, response)
            except Exception as exc:
                results[scorer.name][i] = _Raised(exc)

        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (on_loop, (scorer, i)) for scorer in self._on_loop for i in range(len(batch))
        ]
        if self._in_thread:
            calls.append((in_thread, ()))
        if len(calls) == 1:
            func, args = calls[0]
            await func(*args)
        else:
            async with anyio.create_task_group() as tg:
                for func, args in calls:
                    tg.start_soon(func, *args)
        for i, (index, _, _) in enumerate(batch):
            scores: dict[str, float] = {}
            for scorer in self._scorers:
                self._merge(scorer.name, index, results[scorer.name][i], scores)
            self.scored += 1
            self._on_scored(index, scores)

    def _merge(self, scorer: str, index: int, value: Any, scores: dict[str, float]) -> None:
        """Add what ``scorer`` returned for request ``index`` to its ``scores``, or count
        a failure."""
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
