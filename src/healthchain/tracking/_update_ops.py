"""The operations that update one experiment's row by its id (see :mod:`._operations`).

Each is one row of a counted UPDATE: a group of them must change one row per op, else
it is a :class:`._operations.Conflict` and each is applied alone; alone, one that
changes no row says why. Their statements are listed in
:data:`._pg_checked.COUNTED_MANY`, so on PostgreSQL a group is one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from sqlalchemy.sql import Executable

from ._exceptions import ExperimentNotFoundError, ExperimentStateError
from ._executors import Executor
from ._operations import Conflict, Op, Statement
from ._records import ExperimentStatus
from ._schema import END, STATUS_OF

__all__ = ["CountedUpdateOp", "EndOp"]


class CountedUpdateOp(Op):
    """A counted UPDATE (:attr:`statement`) of the experiment ``row["b_id"]``."""

    __slots__ = ("row",)
    statement: ClassVar[Executable]
    single_statement = True

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__()
        self.row = row

    @property
    def experiment_ids(self) -> list[str]:
        return [self.row["b_id"]]

    @classmethod
    def statements(cls, ops: Sequence[CountedUpdateOp]) -> list[Statement]:
        return [(cls.statement, [op.row for op in ops])]

    @classmethod
    def apply_all(cls, ex: Executor, ops: Sequence[CountedUpdateOp]) -> list[Any]:
        if ex.run(cls.statement, [op.row for op in ops], counted=True) != len(ops):
            if len(ops) > 1:
                raise Conflict
            ops[0]._explain(ex)
        return [None] * len(ops)

    def _explain(self, ex: Executor) -> NoReturn:
        """Raise why this op, applied alone, changed no row: by default, no such experiment."""
        raise ExperimentNotFoundError(self.row["b_id"])


class EndOp(CountedUpdateOp):
    """The final status of a RUNNING experiment."""

    __slots__ = ()
    what = "experiment end"
    order = 2
    statement = END

    @classmethod
    def of(cls, experiment_id: str, status: ExperimentStatus, end: Any, error: str | None) -> EndOp:
        """End ``experiment_id`` as ``status`` at ``end`` (encoded), with ``error``."""
        return cls(
            {"b_id": experiment_id, "b_status": status._value_, "b_end": end, "b_error": error}
        )

    def _explain(self, ex: Executor) -> NoReturn:
        experiment_id = self.row["b_id"]
        found = ex.query(STATUS_OF, {"b_id": experiment_id})
        if not found:
            raise ExperimentNotFoundError(experiment_id)
        raise ExperimentStateError(
            f"experiment {experiment_id!r} has already ended as {found[0][0]}; "
            "an ended experiment cannot be ended again"
        )
