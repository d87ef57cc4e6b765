"""The operations that record metrics and params (see :mod:`._operations`).

A batch of metric points is two ``executemany`` calls: every point into
``metric_points``, and each (experiment, key)'s latest point of the batch upserted into
``latest_metrics``, which keeps whichever is later (higher step, then later timestamp).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from ._exceptions import ExperimentNotFoundError, ExperimentStateError, StorageError
from ._executors import Executor
from ._operations import Conflict, Op
from ._schema import (
    INSERT_METRIC_POINT,
    INSERT_PARAM,
    LAST_STEP,
    PARAMS_OF,
    STATUS_OF,
    UPSERT_LATEST_METRIC,
)
from ._validation import show

__all__ = ["MetricsOp", "ParamsOp"]

# (key, step or None for the writer to assign, encoded timestamp, value or None for NaN)
Point = tuple[str, int | None, Any, float | None]


class MetricsOp(Op):
    """Points of one experiment's metrics; its result is the steps the writer assigned
    to the points queued without one, in order."""

    __slots__ = ("experiment_id", "points", "unstepped")
    what = "metric point"
    order = 1

    def __init__(self, experiment_id: str, points: list[Point], unstepped: bool) -> None:
        super().__init__()
        self.experiment_id, self.points, self.unstepped = experiment_id, points, unstepped

    @classmethod
    def of(
        cls,
        experiment_id: str,
        values: Sequence[tuple[str, float]],
        steps: Sequence[int | None],
        timestamp: Any,
    ) -> MetricsOp:
        """Points from validated ``(key, value)`` pairs, their steps and ``timestamp``
        (encoded). NaN is stored as NULL on every backend (SQLite cannot store it)."""
        points: list[Point] = [
            (key, step, timestamp, None if value != value else value)
            for (key, value), step in zip(values, steps, strict=True)
        ]
        return cls(experiment_id, points, None in steps)

    @property
    def units(self) -> int:
        return len(self.points)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment_id]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[MetricsOp]) -> list[Any]:
        if any(op.unstepped for op in ops):
            rows, results = _assign_steps(ex, ops)
        else:
            rows = [
                {"experiment_id": op.experiment_id, "key": k, "step": s, "timestamp": t, "value": v}
                for op in ops
                for k, s, t, v in op.points
            ]
            results = [[] for _ in ops]
        try:
            ex.run(INSERT_METRIC_POINT, rows)
            ex.run(UPSERT_LATEST_METRIC[ex.dialect], _latest(rows))
        except (sqlite3.IntegrityError, IntegrityError) as exc:
            if len(ops) > 1:
                raise Conflict from None
            _explain(ex, ops[0].experiment_id, exc)
        return results


def _assign_steps(ex: Executor, ops: Sequence[MetricsOp]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Rows of ``ops`` with a step for each point queued without one: one more than the
    highest step of its key stored or earlier in the batch. Ops apply in queue order."""
    highest: dict[tuple[str, str], int] = {}  # in this batch, and stored once looked up
    looked_up: set[tuple[str, str]] = set()
    rows: list[dict[str, Any]] = []
    results: list[Any] = []
    for op in ops:
        experiment_id = op.experiment_id
        assigned: list[int] = []
        for key, step, timestamp, value in op.points:
            pair = (experiment_id, key)
            if step is None:
                last = highest.get(pair, -1)
                if pair not in looked_up:
                    looked_up.add(pair)
                    stored = ex.query(LAST_STEP, {"b_id": experiment_id, "b_key": key})[0][0]
                    if stored is not None and stored > last:
                        last = int(stored)
                step = last + 1
                assigned.append(step)
            if step > highest.get(pair, -1):
                highest[pair] = step
            rows.append(
                {
                    "experiment_id": experiment_id,
                    "key": key,
                    "step": step,
                    "timestamp": timestamp,
                    "value": value,
                }
            )
        results.append(assigned)
    return rows, results


def _latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (experiment, key)'s latest row: one upsert per key, and none that PostgreSQL
    would refuse for touching one row twice in a statement."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        pair = (row["experiment_id"], row["key"])
        best = latest.get(pair)
        if best is None or (row["step"], row["timestamp"]) >= (best["step"], best["timestamp"]):
            latest[pair] = row
    return list(latest.values())


class ParamsOp(Op):
    """Params of one experiment: keys not yet stored are added; a stored key must keep
    its value (its result is then an :class:`ExperimentStateError`, nothing written)."""

    __slots__ = ("experiment_id", "texts")
    what = "param"
    order = 1

    def __init__(self, experiment_id: str, texts: dict[str, str]) -> None:
        super().__init__()
        self.experiment_id, self.texts = experiment_id, texts

    @property
    def units(self) -> int:
        return len(self.texts)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment_id]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[ParamsOp]) -> list[Any]:
        stored: dict[str, dict[str, str]] = {}  # each experiment's, and this batch's so far
        rows: list[dict[str, Any]] = []
        results: list[Any] = []
        for op in ops:
            known = stored.get(op.experiment_id)
            if known is None:
                known = stored[op.experiment_id] = dict(
                    ex.query(PARAMS_OF, {"b_id": op.experiment_id})
                )
            results.append(op._check(known))
            if results[-1] is None:
                new = {key: text for key, text in op.texts.items() if key not in known}
                known.update(new)
                rows.extend(
                    {"experiment_id": op.experiment_id, "key": key, "value": text}
                    for key, text in new.items()
                )
        if rows:
            try:
                ex.run(INSERT_PARAM, rows)
            except (sqlite3.IntegrityError, IntegrityError) as exc:
                if len(ops) > 1:
                    raise Conflict from None
                _explain(ex, ops[0].experiment_id, exc)
        return results

    def _check(self, known: dict[str, str]) -> ExperimentStateError | None:
        for key, text in self.texts.items():
            old = known.get(key)
            if old is not None and old != text:
                return ExperimentStateError(
                    f"param {key!r} of experiment {self.experiment_id!r} is already "
                    f"{_shown(old)}; it cannot become {_shown(text)}: a param describes the "
                    "run and does not change (log a metric for a value that changes)"
                )
        return None


def _shown(text: str) -> str:
    try:
        return show(json.loads(text))
    except ValueError:  # another writer's text
        return show(text)


def _explain(ex: Executor, experiment_id: str, exc: Exception) -> None:
    """A write of ``experiment_id``'s rows broke a constraint: the foreign key, unless
    something else wrote the same rows at the same time."""
    ex.rollback()  # PostgreSQL refuses anything more in a failed transaction
    ex.begin()
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        raise ExperimentNotFoundError(experiment_id) from None
    raise StorageError(
        f"another writer changed experiment {experiment_id!r} at the same time; try again"
    ) from exc
