"""PostgreSQL: the writer prepares its statements again as it writes more
(``_backends.CoreBackend._replan``), so a batch END planned while ``experiments`` was
small does not scan the whole table for the connection's life (autovacuum off: the
server never replans it by itself)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from healthchain.tracking import AsyncExperimentTracker, _backends
from healthchain.tracking._operations import Op

pytestmark = pytest.mark.anyio


async def _all(calls: Sequence[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls))


async def _end_plans(driver: Any) -> list[str]:
    """The plan the writer's session keeps for each of its END-only batch statements."""
    names = await driver.fetch(
        "SELECT name FROM pg_prepared_statements WHERE statement LIKE "
        "'WITH w0 AS (UPDATE experiments SET status%'"
    )
    plans = []
    for (name,) in names:
        rows = await driver.fetch(
            f"EXPLAIN EXECUTE {name}('{{00000000-0000-7000-8000-000000000000}}', "
            "'{COMPLETED}', '{2026-01-01T00:00:00Z}', '{NULL}')"
        )
        plans.append("\n".join(row[0] for row in rows))
    return plans


async def test_end_batches_stop_scanning_experiments_once_the_table_has_grown(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_backends, "REPLAN_FIRST", 1)  # replan after 1, 2, 4, 8... writes
    backends: list[_backends.CoreBackend] = []
    real = _backends.CoreBackend._write_direct

    async def spied(self: _backends.CoreBackend, ops: Sequence[Op]) -> bool:
        backends.append(self)
        return await real(self, ops)

    monkeypatch.setattr(_backends.CoreBackend, "_write_direct", spied)
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        for _ in range(10):  # END batches alone, on a small table: planned for it
            ids = await _all([tracker.start_experiment(name=f"w{i}") for i in range(64)])
            await _all([tracker.end_experiment(i) for i in ids])
        ids = await _all([tracker.start_experiment(name=f"g{i}") for i in range(3000)])
        await _all([tracker.end_experiment(i) for i in ids])
        plans = await _end_plans(backends[-1]._driver)
    assert plans
    for plan in plans:
        assert "Seq Scan on experiments" not in plan, plan
        assert "pk_experiments" in plan, plan
