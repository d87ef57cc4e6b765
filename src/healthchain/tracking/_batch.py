"""A batch of operations in one transaction, replayed one by one if any of them fails.

So under load many operations share one commit, and one bad operation never fails its
neighbours. A transient failure (storage unreachable or locked) is raised instead, for
the writer to retry the whole batch once storage is back.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ._executors import Executor
from ._operations import Op, Statement
from ._transient import is_transient

__all__ = ["apply_batch", "describe_ops", "statements_of"]


def _rollback(ex: Executor) -> None:
    # A broken connection cannot roll back; the server already did.
    with contextlib.suppress(Exception):
        ex.rollback()


def apply_batch(ex: Executor, ops: Sequence[Op]) -> list[Any]:
    """Apply ``ops`` in one transaction; on failure replay each alone. Results or errors.

    A transient failure (storage unreachable or locked) is raised, not recorded, so the
    writer can retry the whole batch once storage is back.
    """
    if len(ops) > 1:
        try:
            # ops of one class that writes many in one statement need no transaction either
            ex.begin(single=ops[0].single_for_many and all(type(op) is type(ops[0]) for op in ops))
            results = _apply_grouped(ex, ops)
            ex.commit()
            return results
        except Exception as exc:
            _rollback(ex)
            if is_transient(exc):
                raise
    outcomes: list[Any] = []
    for op in ops:
        try:
            ex.begin(single=op.single_statement)
            result = op.apply(ex)
            ex.commit()
        except Exception as exc:
            _rollback(ex)
            if is_transient(exc):
                raise
            outcomes.append(exc)
        else:
            outcomes.append(result)
    return outcomes


def _by_class(ops: Sequence[Op]) -> list[tuple[type[Op], list[Op]]]:
    """``ops`` grouped by class, in :attr:`Op.order`."""
    by_class: dict[type[Op], list[Op]] = {}
    for op in ops:
        by_class.setdefault(type(op), []).append(op)
    return sorted(by_class.items(), key=lambda item: item[0].order)


def statements_of(ops: Sequence[Op]) -> list[Statement] | None:
    """The statements that write ``ops``, in order, if every class of them says its
    statements (:meth:`Op.statements`); None if not."""
    parts: list[Statement] = []
    for cls, group in _by_class(ops):
        statements = cls.statements(group)
        if statements is None:
            return None
        parts.extend(statements)
    return parts


def _apply_grouped(ex: Executor, ops: Sequence[Op]) -> list[Any]:
    results: dict[int, Any] = {}
    for cls, group in _by_class(ops):
        results.update(zip(map(id, group), cls.apply_all(ex, group), strict=True))
    return [results[id(op)] for op in ops]


def describe_ops(ops: Sequence[Op], *, max_ids: int = 5) -> str:
    """What ``ops`` would have written: '7 request records, 1 experiment end (experiment X)'."""
    units: Counter[str] = Counter()
    ids: dict[str, None] = {}
    for op in ops:
        units[op.what] += op.units
        ids.update(dict.fromkeys(op.experiment_ids))
    text = ", ".join(f"{n} {what}{'' if n == 1 else 's'}" for what, n in units.items())
    if ids:
        shown = list(ids)[:max_ids]
        more = f" and {len(ids) - max_ids} more" if len(ids) > max_ids else ""
        noun = "experiment" if len(ids) == 1 else "experiments"
        text += f" ({noun} {', '.join(shown)}{more})"
    return text
