"""Raw asyncpg writing every row a tracker lifecycle writes (``_pg_raw.py``'s second
reference for 64 concurrent tasks): the ``experiments`` row, its 4 ``experiment_tags``
rows and 3 ``pipeline_components`` rows (their indexes, foreign keys and serial ids),
then the end's update; 64 lifecycles per transaction.

Three forms, the fastest kept as the figure (all are reported): ``executemany`` of
each statement (64 + 256 + 192 rows, then 64 updates); multi-row statements from
arrays (the three INSERTs as one ``WITH`` statement over ``unnest``, then one
``UPDATE .. FROM unnest``); and the same with the tag and component rows drawn on the
server from the experiments rows' JSON (``json_each``, ``json_array_elements``), as the
tracker draws them. Tag values are stored as the tracker stores them: the value's JSON
text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

from _harness import clock

__all__ = ["FORMS", "full_rows"]

BATCH = 64

_INSERT = (
    "INSERT INTO experiments (id, name, project, start_time, status, tags, pipeline_config, "
    "components, heartbeat_at, heartbeat_interval, host, pid) "
    "VALUES ($1, $2, $3, $4, 'RUNNING', $5, $6, $7, $4, 10.0, $8, $9)"
)
_TAG = "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)"
_COMPONENT = (
    "INSERT INTO pipeline_components (experiment_id, name, type, stage, position) "
    "VALUES ($1, $2, $3, $4, $5)"
)
_UPDATE = "UPDATE experiments SET end_time = $2, status = 'COMPLETED' WHERE id = $1"

_EXPERIMENTS = (
    "WITH e AS (INSERT INTO experiments (id, name, project, start_time, status, tags, "
    "pipeline_config, components, heartbeat_at, heartbeat_interval, host, pid) "
    "SELECT v.id, v.name, $1, v.t, 'RUNNING', v.tags, v.config, v.components, v.t, 10.0, "
    "$2, $3 FROM unnest($4::varchar[], $5::varchar[], $6::timestamptz[], $7::json[], "
    "$8::json[], $9::json[]) AS v(id, name, t, tags, config, components)), "
)
_MULTI_START = (
    _EXPERIMENTS + "t AS (INSERT INTO experiment_tags (experiment_id, key, value) "
    "SELECT * FROM unnest($10::varchar[], $11::varchar[], $12::text[])) "
    "INSERT INTO pipeline_components (experiment_id, name, type, stage, position) "
    "SELECT * FROM unnest($13::varchar[], $14::varchar[], $15::varchar[], $16::varchar[], "
    "$17::integer[])"
)
_FROM_JSON_START = (
    # The tag and component rows drawn on the server from the JSON already bound.
    _EXPERIMENTS + "t AS (INSERT INTO experiment_tags (experiment_id, key, value) "
    "SELECT v.id, j.key, j.value::text FROM unnest($4::varchar[], $7::json[]) AS v(id, tags), "
    "json_each(v.tags) AS j) "
    "INSERT INTO pipeline_components (experiment_id, name, type, stage, position) "
    "SELECT v.id, j.c ->> 0, j.c ->> 1, j.c ->> 2, j.n - 1 "
    "FROM unnest($4::varchar[], $9::json[]) WITH ORDINALITY AS v(id, components, n), "
    "json_array_elements(v.components) WITH ORDINALITY AS j(c, n) ORDER BY v.n, j.n"
)
_ARRAYS = (1, 3, 4, 5, 6)
"""Columns of ``_pg_raw.experiment_row`` bound as arrays after the ids: name, time, the JSONs."""
_MULTI_END = (
    "UPDATE experiments SET end_time = $2, status = 'COMPLETED' "
    "FROM unnest($1::varchar[]) AS v(id) WHERE experiments.id = v.id"
)


def _children(
    rows: list[tuple[Any, ...]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The tag rows and component rows of experiments rows (``_pg_raw.experiment_row``)."""
    tag_rows: list[tuple[Any, ...]] = []
    component_rows: list[tuple[Any, ...]] = []
    for row in rows:
        experiment_id, tags, components = row[0], json.loads(row[4]), json.loads(row[6])
        tag_rows += [(experiment_id, k, json.dumps(v)) for k, v in tags.items()]
        component_rows += [(experiment_id, *c, n) for n, c in enumerate(components)]
    return tag_rows, component_rows


async def _executemany(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    tag_rows, component_rows = _children(rows)
    async with conn.transaction():
        await conn.executemany(_INSERT, rows)
        await conn.executemany(_TAG, tag_rows)
        await conn.executemany(_COMPONENT, component_rows)
        now = dt.datetime.now(dt.UTC)
        await conn.executemany(_UPDATE, [(r[0], now) for r in rows])


async def _multi_row(
    conn: Any, rows: list[tuple[Any, ...]], from_json: bool = False, apart: bool = False
) -> None:
    ids = [r[0] for r in rows]
    first = rows[0]
    # The writer's constants (project, host, pid) bound once, as the tracker binds them.
    params = [
        first[2],
        first[7],
        first[8],
        ids,
        *(list(column) for n, column in enumerate(zip(*rows, strict=True)) if n in _ARRAYS),
    ]
    if not from_json:
        for child_rows in _children(rows):
            params += map(list, zip(*child_rows, strict=True))
    async with conn.transaction():
        await conn.execute(_FROM_JSON_START if from_json else _MULTI_START, *params)
        if not apart:
            await conn.execute(_MULTI_END, ids, dt.datetime.now(dt.UTC))
    if apart:  # the starts committed before the ends, as a tracker must
        async with conn.transaction():
            await conn.execute(_MULTI_END, ids, dt.datetime.now(dt.UTC))


async def _from_json(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    await _multi_row(conn, rows, from_json=True)


async def _from_json_apart(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    await _multi_row(conn, rows, from_json=True, apart=True)


FORMS: dict[str, Callable[[Any, list[tuple[Any, ...]]], Any]] = {
    "executemany": _executemany,
    "multi_row": _multi_row,
    "from_json": _from_json,
}


APART: dict[str, Callable[[Any, list[tuple[Any, ...]]], Any]] = {
    "from_json_apart": _from_json_apart
}
"""``from_json`` with two commits per 64 lifecycles, as the tracker's starts and ends
(``pg_cpu_split.py`` measures it: the server's work of the tracker's commits)."""


async def full_rows(
    conn: Any, counter: Iterator[int], row_of: Callable[[int], tuple[Any, ...]],
    form: str, batches: int,
) -> float:  # fmt: skip
    """Lifecycles per second writing ``batches`` transactions of 64 in ``form``."""
    write = FORMS.get(form) or APART[form]
    t0 = clock()
    for _ in range(batches):
        await write(conn, [row_of(next(counter)) for _ in range(BATCH)])
    return batches * BATCH / (clock() - t0)
