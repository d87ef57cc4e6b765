"""A start's tag and component rows built on the server from its JSON (``_pg_from_json``),
against the real PostgreSQL server: the very rows the fallback (``_backends.
DRIVER_EXECUTOR`` False, as any other driver runs) writes from arrays of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers.postgres import admin_fetch, reset_postgres
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from healthchain.tracking import AsyncExperimentTracker, _backends
from healthchain.tracking._batch import statements_of
from healthchain.tracking._executors import CompiledCache
from healthchain.tracking._operations import StartOp
from healthchain.tracking._pg_statements import batch_statement
from healthchain.tracking._validation import utcnow, validate_components, validate_tags

pytestmark = pytest.mark.anyio

_AWKWARD: list[dict[str, Any]] = [
    {
        'k"q': 1e100,
        "u\\é": "x\u0001y",
        "big": 2**70,
        "f": -0.0,
        "tiny": -1.5e-7,
        "s": "",
        "日本 \u2028": '\\"\n\t ☃',
        "b": True,
        "none": None,
    },
    {},
    {"one": 1},
]
# Rows bound as arrays: containers (the tags JSON keeps a dict's keys in order, a tag's
# text sorts them) and NUL (json_each refuses \u0000).
_NESTED: dict[str, Any] = {"d": {"z": 1, "a": [1, {"y": 2, "b": 3}]}, "l": [3, 2.5e-9]}
_NUL = {"nul": "a\u0000b"}
_COMPONENTS: list[list[dict[str, Any]] | None] = [
    [
        {"name": 'a"b\\c', "type": "t", "stage": None},
        {"name": "é ☃", "type": None, "stage": "s\n"},
        {"name": "p"},
    ],
    None,
    [],
]

_ROWS = (
    "SELECT e.name, t.key, t.value FROM experiment_tags t "
    "JOIN experiments e ON e.id = t.experiment_id ORDER BY 1, 2",
    "SELECT c.id, e.name, c.name, c.type, c.stage, c.position FROM pipeline_components c "
    "JOIN experiments e ON e.id = c.experiment_id ORDER BY c.id",
    "SELECT name, tags::text, components::text FROM experiments ORDER BY name",
)


async def _write_all(url: str) -> list[list[tuple[Any, ...]]]:
    """Every awkward start, many at once, one by one and mixed with nested tags; the rows
    they stored."""
    await reset_postgres(url)
    specs = [(t, c) for t in _AWKWARD for c in _COMPONENTS]
    async with AsyncExperimentTracker(url) as tracker:
        await asyncio.gather(
            *(
                tracker.start_experiment(f"many-{i}", tags=t, components=c)
                for i, (t, c) in enumerate(specs)
            )
        )
        for i, (tags, components) in enumerate([*specs, (_NESTED, _COMPONENTS[0]), (_NUL, None)]):
            await tracker.start_experiment(f"one-{i}", tags=tags, components=components)
        await asyncio.gather(
            *(
                tracker.start_experiment(f"mixed-{i}", tags=t, components=c)
                for i, (t, c) in enumerate([(_NESTED, None), *specs, (_NUL, None)])
            )
        )
    return [[tuple(row) for row in rows] for rows in await admin_fetch(url, *_ROWS)]


async def test_rows_drawn_from_the_json_are_those_the_fallback_writes(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte for byte, component ids included: a direct statement that failed (and fell
    back) would have spent ids."""
    direct = await _write_all(postgres_uri)
    monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    fallback = await _write_all(postgres_uri)
    assert direct == fallback
    tags, components, _ = direct
    assert ("many-0", 'k"q', "1e+100") in tags
    assert ("one-0", "日本 \u2028", '"\\\\\\"\\n\\t ☃"') in tags
    assert ("one-10", "nul", '"a\\u0000b"') in tags
    assert ("one-9", "d", '{"a":[1,{"b":3,"y":2}],"z":1}') in tags
    assert [row[1:] for row in components[:3]] == [
        ("many-0", 'a"b\\c', "t", None, 0),
        ("many-0", "é ☃", None, "s\n", 1),
        ("many-0", "p", None, None, 2),
    ]


def _start(n: int, tags: dict[str, Any]) -> StartOp:
    tags, texts = validate_tags(tags)
    parts = validate_components(_COMPONENTS[0])
    experiment_id = f"0190a4c2-0000-7000-8000-{n:012d}"
    return StartOp.of(experiment_id, "n", "p", utcnow(), tags, texts, None, parts, 10.0)


def test_a_batch_of_starts_binds_only_its_experiments_rows() -> None:
    """Tag and component rows are drawn from the experiments' JSON on the server: the
    statement binds the experiments' columns alone. Nested tags (whose rows' text is not
    the JSON's) and NUL bind their rows as arrays, as before."""
    ops = [_start(n, _AWKWARD[0]) for n in range(3)]
    for batch, bound in (
        (ops, 12),
        (ops[:1], 12),
        ([*ops, _start(3, _NESTED)], 12 + 3 + 5),
        ([_start(4, _NUL)], 12 + 3 + 5),
    ):
        planned = batch_statement(CompiledCache(), {}, asyncpg_dialect(), statements_of(batch))
        assert planned is not None
        assert len(planned[1]) == bound
