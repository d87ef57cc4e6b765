"""Rows a start writes beside its experiment, built on the server from its JSON.

A start stores its tags and pipeline components twice: as JSON in its experiments row
and as rows of ``experiment_tags`` and ``pipeline_components``. In one statement
(:func:`._pg_statements.batch_statement`) the rows come from the JSON the experiments
INSERT before them already binds, its parameters referenced again: nothing more to
encode, where asyncpg's checks of each array element were a third of a start's client
cost. ``json_each`` over plain ``json`` (not jsonb) gives each member's value as the
very text given, so a tag's value is its canonical text when the tags JSON was joined
from those texts (:func:`._validation.joined_tags_json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["FromStart"]


class FromStart:
    """An INSERT of rows drawn from columns of the experiments INSERT ``source`` in the
    same statement (``positions``: its parameters' indexes, named ``names`` in
    ``sql``'s ``{source}``, a row source ``e`` whose ``n`` is the experiment's order)."""

    __slots__ = ("_names", "_sql", "positions", "source")

    def __init__(self, source: Any, positions: Sequence[int], names: str, sql: str) -> None:
        self.source, self.positions, self._names, self._sql = source, positions, names, sql

    @staticmethod
    def pick(_row: Any) -> tuple[Any, ...]:
        """No parameters of its own."""
        return ()

    def render(self, first: int, types: Sequence[str], *, one_row: bool) -> str:
        """The statement, the source's parameters numbered from ``$first`` with
        ``types``: one value each (``one_row``) or arrays."""
        refs = [f"${first + p}::{types[p]}" for p in self.positions]
        if one_row:
            source = f"(VALUES ({', '.join(refs)}, 1)) AS e({self._names}, n)"
        else:
            arrays = ", ".join(f"{ref}[]" for ref in refs)
            source = f"unnest({arrays}) WITH ORDINALITY AS e({self._names}, n)"
        return self._sql.format(source=source)
