"""SqliteExecutor: many rows per INSERT statement, in a few statement shapes."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, Text, bindparam, insert

from healthchain.tracking._executors import CompiledCache, SqliteExecutor

_TABLE = Table("t", MetaData(), Column("a", Integer), Column("b", Text))
_INSERT = insert(_TABLE).values(a=bindparam("a"), b=bindparam("b"))


def _inserts(tmp_path: Path, count: int) -> tuple[list[str], list[tuple[int, str]]]:
    """The INSERT statements that writing ``count`` rows ran, and the rows written."""
    with contextlib.closing(sqlite3.connect(tmp_path / f"t{count}.db")) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        ex = SqliteExecutor(conn, CompiledCache())
        ex.begin()
        assert ex.run(_INSERT, [{"a": i, "b": f"r{i}"} for i in range(count)]) == count
        ex.commit()
        conn.set_trace_callback(None)
        rows = conn.execute("SELECT a, b FROM t ORDER BY a").fetchall()
    return [s for s in statements if s.startswith("INSERT")], rows


def test_three_rows_are_one_statement(tmp_path: Path) -> None:
    # A three-component pipeline: one INSERT, not a pair of two rows and one.
    inserts, rows = _inserts(tmp_path, 3)
    assert len(inserts) == 1, inserts
    assert rows == [(0, "r0"), (1, "r1"), (2, "r2")]


def test_any_row_count_is_written_in_a_few_statement_shapes(tmp_path: Path) -> None:
    shapes: set[int] = set()
    for count in range(1, 40):
        inserts, rows = _inserts(tmp_path, count)
        assert rows == [(i, f"r{i}") for i in range(count)]
        assert len(inserts) <= count.bit_count() + 1, (count, len(inserts))
        shapes.update(s.count("(") - 1 for s in inserts)
    # powers of two up to 32, and 3: a connection's statement cache keeps them all
    assert shapes == {1, 2, 3, 4, 8, 16, 32}
