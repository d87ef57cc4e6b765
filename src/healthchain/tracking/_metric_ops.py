"""The operations that record metrics and params (see :mod:`._operations`).

A batch of metric points is two bulk writes: every point into ``metric_points``, and
each (experiment, key)'s latest point of the batch upserted into ``latest_metrics``,
which keeps whichever is later (higher step, then later timestamp). A batch of params
reads each experiment's stored params once, adds the new keys and refuses changed ones.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from ._exceptions import ExperimentNotFoundError, ExperimentStateError
from ._executors import Executor
from ._metric_input import MAX_STEP
from ._operations import Conflict, Op, Statement
from ._schema import (
    INSERT_METRIC_POINT,
    INSERT_PARAM,
    LAST_STEP,
    PARAMS_OF,
    STATUS_OF,
    UPSERT_LATEST_METRIC,
)
from ._steps import steps_exhausted
from ._validation import show

__all__ = ["MetricsOp", "ParamsOp"]

Row = dict[str, Any]
_NO_STEPS: tuple[int, ...] = ()
_INDEX_ORDER = operator.itemgetter("experiment_id", "key")


class MetricsOp(Op):
    """Points of one experiment's metrics, as ``metric_points`` rows (a step of None is
    the writer's to assign); its result is the steps the writer assigned, in order."""

    __slots__ = ("experiment_id", "explicit", "rows", "unstepped")
    what = "metric point"
    order = 1
    single_statement = single_for_many = True  # write_all; steps are read before

    def __init__(
        self, experiment_id: str, rows: list[Row], *, unstepped: bool, explicit: bool
    ) -> None:
        super().__init__()
        self.experiment_id, self.rows = experiment_id, rows
        self.unstepped, self.explicit = unstepped, explicit

    @classmethod
    def of(
        cls,
        experiment_id: str,
        values: Sequence[tuple[str, float]],
        steps: Sequence[int | None],
        timestamp: Any,
        *,
        explicit: bool,
    ) -> MetricsOp:
        """Rows from validated ``(key, value)`` pairs, their steps and ``timestamp``
        (encoded); ``explicit`` if the caller chose the step. NaN is stored as NULL on
        every backend (SQLite cannot store it). Built here, on the caller's turn, so the
        writer's thread holds the GIL for less."""
        rows: list[Row] = [
            {
                "experiment_id": experiment_id,
                "key": key,
                "step": step,
                "timestamp": timestamp,
                "value": None if value != value else value,
            }
            for (key, value), step in zip(values, steps, strict=True)
        ]
        return cls(experiment_id, rows, unstepped=None in steps, explicit=explicit)

    @property
    def units(self) -> int:
        return len(self.rows)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment_id]

    @classmethod
    def statements(cls, ops: Sequence[MetricsOp]) -> list[Statement] | None:
        """PostgreSQL's statements, when every point has its step (the tracker's counter
        gave it, or the caller); a point without one needs its key's stored highest step
        read first (:meth:`apply_all`)."""
        if any(op.unstepped for op in ops):
            return None
        return _statements(ops, [op.rows for op in ops], "postgresql")

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[MetricsOp]) -> list[Any]:
        if any(op.unstepped for op in ops):
            per_op, results = _assign_steps(ex, ops)
        else:
            per_op, results = [op.rows for op in ops], [_NO_STEPS] * len(ops)
        try:
            ex.write_all(_statements(ops, per_op, ex.dialect))
        except (sqlite3.IntegrityError, IntegrityError):
            if len(ops) > 1:
                raise Conflict from None
            if _missing(ex, ops[0].experiment_id):
                raise ExperimentNotFoundError(ops[0].experiment_id) from None
            raise  # not ours: another program's constraint or trigger
        return results


def _statements(ops: Sequence[MetricsOp], per_op: list[list[Row]], dialect: str) -> list[Statement]:
    """Every point of ``ops`` (their rows ``per_op``), and each key's latest upserted."""
    points = per_op[0] if len(per_op) == 1 else [row for rows in per_op for row in rows]
    if len(ops) > 1:
        # In the history index's order (stable: each key's points stay in queue
        # order), consecutive inserts land on the same index pages: for 64 tasks
        # logging 10 keys, the writer's thread spends about 15% less per point than
        # with each call's keys interleaved.
        points.sort(key=_INDEX_ORDER)
    return [
        (INSERT_METRIC_POINT, points),
        (UPSERT_LATEST_METRIC[dialect], _latest(ops, per_op)),
    ]


def _assign_steps(ex: Executor, ops: Sequence[MetricsOp]) -> tuple[list[list[Row]], list[Any]]:
    """Each op's rows with a step for each point queued without one: one more than the
    highest step of its key stored or earlier in the batch. Ops apply in queue order.
    The ops keep their own rows, for a replay one by one."""
    highest: dict[tuple[str, str], int] = {}  # in this batch, and stored once looked up
    looked_up: set[tuple[str, str]] = set()
    per_op: list[list[Row]] = []
    results: list[Any] = []
    for op in ops:
        rows: list[Row] = []
        assigned: list[int] = []
        for row in op.rows:
            pair = (op.experiment_id, row["key"])
            step = row["step"]
            if step is None:
                last = highest.get(pair, -1)
                if pair not in looked_up:
                    looked_up.add(pair)
                    stored = ex.query(LAST_STEP, {"b_id": pair[0], "b_key": pair[1]})[0][0]
                    if stored is not None and stored > last:
                        last = int(stored)
                step = last + 1
                if step > MAX_STEP:
                    raise steps_exhausted(*pair)
                assigned.append(step)
                row = {**row, "step": step}
            if step > highest.get(pair, -1):
                highest[pair] = step
            rows.append(row)
        per_op.append(rows)
        results.append(assigned)
    return per_op, results


def _latest(ops: Sequence[MetricsOp], per_op: list[list[Row]]) -> list[Row]:
    """Each (experiment, key)'s latest row: one upsert per key, and none that PostgreSQL
    would refuse for touching one row twice in a statement.

    A step the tracker or the writer assigned is higher than any queued before it for
    its key, so only a step the caller chose needs comparing. One op's keys are distinct
    (a dict's, or the one of ``log_metric``): alone, its rows are the latest.
    """
    if len(ops) == 1:
        return per_op[0]
    latest: dict[tuple[str, str], Row] = {}
    for op, rows in zip(ops, per_op, strict=True):
        experiment_id = op.experiment_id
        if not op.explicit:
            for row in rows:
                latest[experiment_id, row["key"]] = row
            continue
        for row in rows:
            pair = (experiment_id, row["key"])
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
    single_statement = single_for_many = True  # stored params are read before

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
    def statements(cls, ops: Sequence[ParamsOp]) -> list[Statement]:
        """Every param given: each new or stored with the same value, or the statement
        fails and :meth:`apply_all` (which reads them first) says which key changed."""
        rows = [
            {"experiment_id": op.experiment_id, "key": key, "value": text}
            for op in ops
            for key, text in op.texts.items()
        ]
        return [(INSERT_PARAM, rows)]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[ParamsOp]) -> list[Any]:
        try:
            return cls._apply(ex, ops)
        except (sqlite3.IntegrityError, IntegrityError):
            if len(ops) > 1:
                raise Conflict from None
            if _missing(ex, ops[0].experiment_id):
                raise ExperimentNotFoundError(ops[0].experiment_id) from None
        # Another writer stored one of these keys since we looked: judge them again.
        return cls._apply(ex, ops)

    @classmethod
    def _apply(cls, ex: Executor, ops: Sequence[ParamsOp]) -> list[Any]:
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
            ex.run(INSERT_PARAM, rows)
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


def _missing(ex: Executor, experiment_id: str) -> bool:
    """After a write broke a constraint: whether ``experiment_id`` names no experiment
    (the foreign key). The failed transaction is rolled back and a new one begun."""
    ex.rollback()  # PostgreSQL refuses anything more in a failed transaction
    ex.begin()
    return not ex.query(STATUS_OF, {"b_id": experiment_id})
