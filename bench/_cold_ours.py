"""Cold start, healthchain: import, open a fresh file, create the schema, first experiment
committed. ``_cold_ours.py DB_PATH OUT``; the parent times from spawn to ``committed``."""

import time

t0 = time.monotonic()

import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from healthchain.tracking import AsyncExperimentTracker  # noqa: E402

t_import = time.monotonic()


async def main() -> float:
    async with AsyncExperimentTracker(f"sqlite:///{sys.argv[1]}", project_name="bench") as t:
        await t.start_experiment(
            "first",
            tags={"environment": "production", "model": "model-0", "owner": "owner-0"},
            components=[{"name": "preprocess", "type": "transform", "stage": "pre"}],
        )
        return time.monotonic()


committed = asyncio.run(main())
with open(sys.argv[2], "w") as f:
    json.dump({"t0": t0, "import_s": t_import - t0, "committed": committed}, f)
