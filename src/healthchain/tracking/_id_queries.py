"""Ids by prefix: resolving a unique prefix and abbreviating ids as git does.

Both read the primary-key index from a prefix or an id on, never every id.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, select

from ._exceptions import AmbiguousIdError, ExperimentNotFoundError
from ._executors import Executor
from ._ids import id_prefix_range, unique_prefix
from ._schema import experiments, static

__all__ = ["AMBIGUOUS_SHOWN", "abbreviate_ids", "resolve_id"]

AMBIGUOUS_SHOWN = 3
"""How many matches an ambiguous prefix's error lists."""

_id = experiments.c.id
ID_EXISTS = static(select(_id).where(_id == bindparam("b_id")))
_IN_PREFIX_RANGE = and_(_id >= bindparam("low"), _id < bindparam("high"))
# The primary-key index read from the prefix on: a handful of entries, never every id.
IDS_IN_PREFIX_RANGE = static(
    select(_id).where(_IN_PREFIX_RANGE).order_by(_id).limit(AMBIGUOUS_SHOWN + 1)
)
COUNT_IN_PREFIX_RANGE = static(select(func.count()).where(_IN_PREFIX_RANGE))


def resolve_id(ex: Executor, text: str) -> str:
    """The one stored id ``text`` is, or is a prefix of (see :func:`._ids.id_prefix_range`).

    A whole id is looked up as given first, so another writer's id in any case is found.
    Raises ExperimentNotFoundError, or AmbiguousIdError naming a few of the matches.
    """
    if len(text) == 36 and ex.query(ID_EXISTS, {"b_id": text}):
        return text
    bounds = id_prefix_range(text)
    if bounds is None:
        raise ExperimentNotFoundError(text)
    low, high = bounds
    params = {"low": low, "high": high}
    # Another writer's id need not be hex: keep only ids that really start with the prefix.
    found = [row[0] for row in ex.query(IDS_IN_PREFIX_RANGE, params) if row[0].startswith(low)]
    if not found:
        raise ExperimentNotFoundError(text)
    if len(found) == 1:
        return str(found[0])
    count = len(found)
    if count > AMBIGUOUS_SHOWN:
        count = int(ex.query(COUNT_IN_PREFIX_RANGE, params)[0][0])
    raise AmbiguousIdError(text, found[:AMBIGUOUS_SHOWN], count)


_NEIGHBOURS_PER_QUERY = 100  # two subqueries each: well under every backend's column cap


@functools.lru_cache(maxsize=8)
def _neighbours_query(count: int) -> Select[Any]:
    columns: list[Any] = []
    for i in range(count):
        columns.append(select(func.max(_id)).where(_id < bindparam(f"x{i}")).scalar_subquery())
        columns.append(select(func.min(_id)).where(_id > bindparam(f"x{i}")).scalar_subquery())
    return select(*columns)


def abbreviate_ids(ex: Executor, ids: list[str], min_length: int) -> dict[str, str]:
    """Each id's shortest unique prefix of at least ``min_length`` among the stored ids.

    Each id's neighbours in id order are two index seeks, a hundred ids per statement.
    """
    short: dict[str, str] = {}
    for start in range(0, len(ids), _NEIGHBOURS_PER_QUERY):
        chunk = ids[start : start + _NEIGHBOURS_PER_QUERY]
        params = {f"x{i}": experiment_id for i, experiment_id in enumerate(chunk)}
        row = ex.query(_neighbours_query(len(chunk)), params)[0]
        for i, experiment_id in enumerate(chunk):
            short[experiment_id] = unique_prefix(
                experiment_id, row[2 * i], row[2 * i + 1], min_length
            )
    return short
