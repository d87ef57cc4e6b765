"""Many metric points as a few texts in PostgreSQL's array syntax, parsed by the server.

asyncpg encodes a list bound as an array element by element, and checks each element
against ``collections.abc`` ABCs on the way (a Python-level ``__instancecheck__``): for
a batch of points, five arrays of one element per point were most of what the writer's
client did per point. Here each column of the points is one text instead, built by
joins and ``str`` of a list (C loops), and cast on the server (``$n::text::bigint[]``,
PostgreSQL's own array input). Each point's timestamp, shared by the points of one call,
is bound once per distinct value in a ``timestamptz[]``, the points holding its index.

What the text says is exactly what the arrays said: floats are written as ``repr`` (the
shortest text that reads back as the same double, ``inf`` and ``-0.0`` included), NaN
is None as ever (stored as NULL), and a text element with a quote or a backslash in it
is escaped as the array syntax wants.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table

from ._pg_checked import PG

__all__ = ["Packed"]


def _texts(values: Sequence[str]) -> str:
    """``values`` as an array literal of quoted elements (``{"a","b"}``)."""
    joined = '","'.join(values)
    # Inside double quotes only a quote and a backslash mean anything to array input.
    if "\\" in joined or joined.count('"') != 2 * (len(values) - 1):
        return "{" + ",".join(map(_quoted, values)) + "}"
    return '{"' + joined + '"}'


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _numbers(values: list[Any]) -> str:
    """Ints and floats (None for NULL) as an array literal: ``str`` of the list writes
    each with its ``repr``, and no number's text holds ``None``."""
    return "{" + str(values)[1:-1].replace("None", "NULL") + "}"


class Packed:
    """How ``metric_points`` rows go as texts: the statement (its parameters numbered
    from any ``$n``, for a place in a batch's one statement) and its parameters."""

    __slots__ = ("_head", "_types", "pick")

    COLUMNS = ("experiment_id", "key", "step", "timestamp", "value")

    def __init__(self, table: Table) -> None:
        self._head = f"INSERT INTO {table.name} ({', '.join(self.COLUMNS)})"
        # Each column's type without its length: an explicit cast to VARCHAR(36) would cut
        # a longer text to fit, where the INSERT's own assignment refuses it.
        self._types = [
            re.sub(r"\(\d+\)", "", table.c[c].type.compile(dialect=PG)) for c in self.COLUMNS
        ]
        self.pick: Callable[[Any], tuple[Any, ...]] = operator.itemgetter(*self.COLUMNS)
        """A row mapping to its values in column order (one row goes as plain values)."""

    @staticmethod
    def width(*, one_row: bool) -> int:
        """How many parameters :meth:`render` takes."""
        return 5 if one_row else 6

    def render(self, first: int, *, one_row: bool = False) -> str:
        """The INSERT with its parameters numbered from ``$first``: one row's five
        values, or :meth:`values`' six texts and array."""
        e, k, s, t, v = self._types
        if one_row:
            casts = zip(range(first, first + 5), self._types, strict=True)
            return f"{self._head} VALUES ({', '.join(f'${n}::{c}' for n, c in casts)})"
        n = [f"${n}" for n in range(first, first + 6)]
        return (
            f"{self._head} SELECT p.e, p.k, p.s, ({n[3]}::{t}[])[p.i], p.v "
            f"FROM unnest({n[0]}::text::{e}[], {n[1]}::text::{k}[], {n[2]}::text::{s}[], "
            f"{n[4]}::text::INTEGER[], {n[5]}::text::{v}[]) AS p(e, k, s, i, v)"
        )

    def values(self, rows: Sequence[Any]) -> list[Any]:
        """The parameters of :meth:`render` (not ``one_row``) for ``rows``."""
        ids, keys, steps, stamps, values = zip(*map(self.pick, rows), strict=True)
        distinct = {stamp: n for n, stamp in enumerate(dict.fromkeys(stamps), 1)}
        return [
            _texts(ids),
            _texts(keys),
            _numbers(list(steps)),
            list(distinct),
            _numbers(list(map(distinct.__getitem__, stamps))),
            _numbers(list(values)),
        ]
