"""Operations: the writes a tracker queues, each applying itself alone or in a group.

An operation class says once how a list of its operations is written
(:meth:`Op.apply_all`); applying one alone is that with a list of one, so a new
operation is one class, not one class plus a case in the batch code. Operations are
applied in :attr:`Op.order` across classes (an experiment's row before its requests and
its end), inside a transaction the caller (:mod:`._batch`) owns.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable

from ._codecs import Codec, from_db_time, scores_to_json
from ._exceptions import ExperimentNotFoundError, InvalidInputError
from ._executors import Executor
from ._records import RequestRecord
from ._schema import (
    BEAT,
    COMPONENTS_OF_START,
    DELETE,
    INSERT_COMPONENT,
    INSERT_EXPERIMENT,
    INSERT_REQUEST,
    INSERT_TAG,
    REAP,
    RUNNING_ROWS,
    STATUS_OF,
    TAGS_OF_START,
)
from ._settings import MISSED_BEATS, judged_interval
from ._validation import dump_json, joined_tags_json, printable

__all__ = [
    "BeatOp",
    "Conflict",
    "DeleteOp",
    "Op",
    "ReapOp",
    "RequestsOp",
    "StartOp",
    "Statement",
]

_HOST = socket.gethostname()
# os.getpid() is a system call on every start; the pid only changes in a forked child.
_PID = os.getpid()


def _forked() -> None:
    global _PID
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)

Statement = tuple[Executable, Sequence[dict[str, Any]]]
"""A statement and the rows it is run for."""


class Conflict(Exception):
    """A group of operations cannot be applied as a whole; apply each alone instead."""


class Op:
    """One queued write, applied inside a transaction on an :class:`Executor`."""

    __slots__ = ("future",)
    what: ClassVar[str] = "write"
    """What one unit of it is, for 'not recorded: ...' messages ("experiment start")."""
    order: ClassVar[int] = 100
    """Where this class's operations go in a group (lower first)."""
    single_statement: ClassVar[bool] = False
    """Applied alone, it writes with one statement (reads aside, and what explains a
    failure), atomic by itself: it may run without a transaction around it.
    :class:`._pg_executor.PgExecutor` refuses a second write statement then."""
    single_for_many: ClassVar[bool] = False
    """:meth:`apply_all` of many writes with one statement too, and fails only as that
    statement does (never with :class:`Conflict` after it wrote, as a count that falls
    short would): a group of them alone in a batch runs without a transaction."""

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[Any]) -> list[Any]:
        """Apply ``ops`` (all of this class) in the current transaction; their results.

        With more than one, raise :class:`Conflict` (or any error) when one of them fails,
        so each is applied alone; alone, raise the error its caller should see.
        """
        return [op.apply(ex) for op in ops]

    def apply(self, ex: Executor) -> Any:
        """Apply this operation alone: :meth:`apply_all` of a list of one."""
        return self.apply_all(ex, (self,))[0]

    @classmethod
    def statements(cls, ops: Sequence[Any]) -> list[Statement] | None:
        """The statements and rows that apply ``ops`` (all of this class), when that is
        all :meth:`apply_all` does, each result is None, and every row given must be
        written (an UPDATE changing one row per row; a param found stored as given
        counts as written, see :data:`._pg_checked.NEW_OR_SAME`): a batch of such
        operations may be one statement (:func:`._pg_statements.batch_statement`). None
        otherwise."""
        return None

    @property
    def units(self) -> int:
        return 1

    @property
    def experiment_ids(self) -> list[str]:
        return []


class StartOp(Op):
    """A new experiment row with its tags and pipeline components."""

    __slots__ = ("components", "experiment", "in_json", "tags")
    what = "experiment start"
    order = 0
    single_statement = single_for_many = True  # write_all

    def __init__(
        self,
        experiment: dict[str, Any],
        tags: list[dict[str, Any]],
        components: list[dict[str, Any]],
        in_json: bool = False,
    ) -> None:
        super().__init__()
        self.experiment, self.tags, self.components = experiment, tags, components
        self.in_json = in_json
        """Its tag and component rows are, as text, the members of its tags JSON and the
        elements of its components JSON: they may be built from those on the server."""

    @classmethod
    def of(
        cls,
        experiment_id: str,
        name: str,
        project: str,
        now: Any,
        tags: dict[str, Any],
        tag_texts: dict[str, str],
        config_text: str | None,
        parts: list[tuple[str, str | None, str | None]],
        heartbeat_interval: float,
    ) -> StartOp:
        """The rows of a new RUNNING experiment, from validated values (``now`` encoded;
        ``config_text`` and ``tag_texts`` the JSON validation made of them)."""
        joined = joined_tags_json(tags, tag_texts)
        experiment = {
            "id": experiment_id,
            "name": name,
            "project": project,
            "start_time": now,
            "status": "RUNNING",
            "tags": dump_json(tags) if joined is None else joined,
            "pipeline_config": config_text,
            "components": dump_json(parts) if parts else None,
            "heartbeat_at": now,
            "heartbeat_interval": heartbeat_interval,
            "host": _HOST,
            "pid": _PID,
        }
        tag_rows = [
            {"experiment_id": experiment_id, "key": k, "value": v} for k, v in tag_texts.items()
        ]
        component_rows = [
            {"experiment_id": experiment_id, "name": n, "type": t, "stage": s, "position": i}
            for i, (n, t, s) in enumerate(parts)
        ]
        # PostgreSQL's json_each refuses the escape \u0000 (no text holds NUL).
        in_json = joined is not None and "\\u0000" not in joined
        return cls(experiment, tag_rows, component_rows, in_json=in_json)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment["id"]]

    @classmethod
    def statements(cls, ops: Sequence[StartOp]) -> list[Statement]:
        """As :meth:`rows`; tag and component rows drawn from the experiments rows when
        each op's may be (:attr:`in_json`)."""
        if not all(op.in_json for op in ops):
            return cls.rows(ops)
        experiments = [op.experiment for op in ops]
        return [
            (INSERT_EXPERIMENT, experiments),
            (TAGS_OF_START, experiments),
            (COMPONENTS_OF_START, experiments),
        ]

    @classmethod
    def rows(cls, ops: Sequence[StartOp]) -> list[Statement]:
        """Every row of ``ops``, by table."""
        return [
            (INSERT_EXPERIMENT, [op.experiment for op in ops]),
            (INSERT_TAG, [row for op in ops for row in op.tags]),
            (INSERT_COMPONENT, [row for op in ops for row in op.components]),
        ]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[StartOp]) -> list[Any]:
        ex.write_all(cls.rows(ops))
        return [None] * len(ops)


class RequestsOp(Op):
    """Request records of one experiment."""

    __slots__ = ("experiment_id", "rows")
    what = "request record"
    order = 1
    single_statement = single_for_many = True

    def __init__(self, experiment_id: str, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.experiment_id, self.rows = experiment_id, rows

    @classmethod
    def of(cls, experiment_id: str, records: Sequence[RequestRecord], codec: Codec) -> RequestsOp:
        """The rows of validated request records."""
        time = codec.time

        def scores(r: RequestRecord) -> str | None:
            return None if r.scores is None else dump_json(scores_to_json(r.scores))

        rows = [
            {
                "experiment_id": experiment_id,
                "seq": r.index,
                "start_time": time(r.start_time),
                "latency_ms": float(r.latency_ms),
                "status_code": r.status_code,
                "error": r.error,
                "scores": scores(r),
            }
            for r in records
        ]
        return cls(experiment_id, rows)

    @property
    def units(self) -> int:
        return len(self.rows)

    @property
    def experiment_ids(self) -> list[str]:
        return [self.experiment_id]

    @classmethod
    def statements(cls, ops: Sequence[RequestsOp]) -> list[Statement]:
        return [(INSERT_REQUEST, [row for op in ops for row in op.rows])]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[RequestsOp]) -> list[Any]:
        try:
            ex.run(INSERT_REQUEST, [row for op in ops for row in op.rows])
        except (sqlite3.IntegrityError, IntegrityError):
            if len(ops) > 1:
                raise Conflict from None
            ops[0]._explain(ex)
        return [None] * len(ops)

    def _explain(self, ex: Executor) -> None:
        ex.rollback()  # PostgreSQL refuses anything more in a failed transaction
        ex.begin()
        if not ex.query(STATUS_OF, {"b_id": self.experiment_id}):
            raise ExperimentNotFoundError(self.experiment_id) from None
        raise InvalidInputError(
            f"a request index in {[r['seq'] for r in self.rows]!r} was already logged for "
            f"experiment {self.experiment_id!r}; give each request a unique index"
        ) from None


class BeatOp(Op):
    """A heartbeat of the RUNNING experiments of one tracker."""

    __slots__ = ("rows",)
    what = "heartbeat"
    order = 3
    single_statement = single_for_many = True

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__()
        self.rows = rows

    @classmethod
    def of(cls, experiment_ids: Iterable[str], beat: Any) -> BeatOp:
        """A heartbeat at ``beat`` (encoded) for each of ``experiment_ids``."""
        return cls([{"b_id": i, "b_beat": beat} for i in experiment_ids])

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[BeatOp]) -> list[Any]:
        rows = [row for op in ops for row in op.rows]
        if rows:
            ex.run(BEAT, rows)
        return [None] * len(ops)


class ReapOp(Op):
    """Mark RUNNING experiments whose heartbeat is too old as FAILED; returns their ids.

    Each row is judged on its own values, which another program may have written: a row
    without a readable heartbeat is left alone; an interval outside
    ``HEARTBEAT_INTERVAL_RANGE`` is judged by the nearest bound, an unusable one (NULL,
    NaN, not positive) by the longest. The end time recorded is the last heartbeat, when
    the process was last known alive; the error says when it was reaped.
    """

    __slots__ = ("codec", "now")
    what = "reap"
    order = 4

    def __init__(self, now: datetime, codec: Codec) -> None:
        super().__init__()
        self.now, self.codec = now, codec

    def apply(self, ex: Executor) -> list[str]:
        reaped: list[str] = []
        for experiment_id, beat, interval, host, pid in ex.query(RUNNING_ROWS):
            try:
                seen = from_db_time(beat)
            except (ValueError, TypeError, AttributeError, OverflowError):
                seen = None
            if seen is None:
                continue
            judged = judged_interval(interval)
            if not (self.now - seen).total_seconds() > MISSED_BEATS * judged:
                continue
            error = (
                f"process {pid} on host {host!r} stopped reporting: last heartbeat at "
                f"{seen.isoformat()}, more than {MISSED_BEATS} x {judged:g} s before it was "
                f"reaped at {self.now.isoformat()}"
            )
            if judged != interval:
                error += f" (its recorded heartbeat interval, {interval!r}, is out of range)"
            row = {"b_id": experiment_id, "b_seen": beat, "b_end": self.codec.time(seen)}
            row["b_error"] = printable(error)
            if ex.run(REAP, [row], counted=True):
                reaped.append(experiment_id)
        return reaped


class DeleteOp(Op):
    """Experiments deleted with everything recorded for them; returns how many."""

    __slots__ = ("ids",)
    what = "experiment deletion"
    order = 5

    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.ids = ids

    @property
    def units(self) -> int:
        return len(self.ids)

    @property
    def experiment_ids(self) -> list[str]:
        return self.ids

    def apply(self, ex: Executor) -> int:
        return ex.run(DELETE, [{"b_id": i} for i in self.ids], counted=True)
