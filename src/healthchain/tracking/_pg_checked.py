"""Counted updates and checked inserts of many rows, for PostgreSQL's one statement per
batch (:func:`._pg_statements.batch_statement`): each statement is exact about the rows it
changed, so a batch that would fall short fails whole and is replayed one op at a time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.sql import Executable

from ._executors import picker
from ._schema import END, FILES_DIR, INSERT_PARAM, experiments, params

__all__ = ["COUNTED_MANY", "NEW_OR_SAME", "PG", "Update"]


class Update:
    """A counted ``UPDATE .. FROM unnest(arrays)``: one statement for any number of rows,
    whose row count is exact (a row named twice is updated once, so the count falls
    short and the batch is replayed one by one, as with a statement per row)."""

    __slots__ = ("_assignments", "_columns", "_table", "_types", "_where", "pick", "sql", "width")

    def __init__(self, table: Any, sets: dict[str, str], where: str) -> None:
        self._table, self._where = table.name, where
        self._columns = ["id", *sets]
        self._types = [table.c[c].type.compile(dialect=PG) for c in self._columns]
        self._assignments = ", ".join(f"{c} = v.{c}" for c in sets)
        self.pick = picker(["b_id", *sets.values()])
        """A row mapping to its values, one per array, in parameter order."""
        self.width = len(self._columns)
        self.sql = self.render()

    def render(self, first: int = 1, returning: str = "") -> str:
        """The statement with its arrays numbered from ``$first``."""
        arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(self._types, first))
        return (
            f"UPDATE {self._table} SET {self._assignments} "
            f"FROM unnest({arrays}) AS v({', '.join(self._columns)}) "
            f"WHERE {self._table}.id = v.id AND {self._where}{returning}"
        )

    def count_check(self, name: str, first: int) -> str:
        """True when the update ``name`` (a WITH query returning its rows) changed one
        row per id bound (array ``$first``)."""
        return f"(SELECT count(*) FROM {name}) = cardinality(${first}::{self._types[0]}[])"


class NewOrSame(Update):
    """An ``INSERT .. FROM unnest(arrays) ON CONFLICT DO NOTHING`` of rows keyed by the
    table's primary key, each of which must be new or stored already with the same
    value: its check fails the statement (nothing written) unless every row given was
    inserted or found stored as given. A row named twice, or stored with another value,
    falls short, and the batch is replayed one by one, which says what is wrong."""

    __slots__ = ("_keys", "_value")

    def __init__(self, table: Any, value: str) -> None:
        self._keys = [c.name for c in table.primary_key.columns]
        self._value = value
        self._table, self._columns = table.name, [*self._keys, value]
        self._types = [table.c[c].type.compile(dialect=PG) for c in self._columns]
        self.pick = picker(self._columns)
        self.width = len(self._columns)
        self.sql = self.render()

    def _unnest(self, first: int) -> str:
        arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(self._types, first))
        return f"unnest({arrays}) AS v({', '.join(self._columns)})"

    def render(self, first: int = 1, returning: str = "") -> str:
        return (
            f"INSERT INTO {self._table} ({', '.join(self._columns)}) SELECT * FROM "
            f"{self._unnest(first)} ON CONFLICT ({', '.join(self._keys)}) DO NOTHING{returning}"
        )

    def count_check(self, name: str, first: int) -> str:
        # The statement's snapshot does not see the rows it inserts: none counted twice.
        same = " AND ".join(f"t.{c} = v.{c}" for c in self._columns)
        stored = f"(SELECT count(*) FROM {self._table} t, {self._unnest(first)} WHERE {same})"
        return (
            f"(SELECT count(*) FROM {name}) + {stored} = cardinality(${first}::{self._types[0]}[])"
        )


PG = PGDialect()  # type: ignore[no-untyped-call]  # for type names only

COUNTED_MANY: dict[Executable, Update] = {
    END: Update(
        experiments,
        {"status": "b_status", "end_time": "b_end", "error": "b_error"},
        "experiments.status = 'RUNNING'",
    ),
    FILES_DIR: Update(experiments, {"files_dir": "b_files_dir"}, "TRUE"),
}
"""Counted updates hot enough for a statement of their own over many rows (and a place
in :func:`batch_statement`). Others run once per row."""

NEW_OR_SAME: dict[Executable, NewOrSame] = {INSERT_PARAM: NewOrSame(params, "value")}
"""INSERTs whose rows may be stored already, with the same value, in
:func:`batch_statement`: a param logged again with its value is a no-op."""
