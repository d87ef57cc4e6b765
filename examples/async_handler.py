"""A sandbox whose handler and EHR method are ``async def``, run from async code.

Needs only ``pip install healthchain`` (no extra). Run it from anywhere; it writes
``experiments.db`` in the working directory (no request files: ``save_data=False``) and
prints its path.

Async handlers run on the sandbox's event loop, so they must not block: await I/O, and
push CPU-heavy or blocking work to a thread (``anyio.to_thread.run_sync``). Run it with::

    python examples/async_handler.py
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio

import healthchain as hc
from healthchain.data_generators import CdsDataGenerator
from healthchain.models import Card, CdsFhirData, CDSRequest, CDSResponse
from healthchain.use_cases import ClinicalDecisionSupport


@hc.sandbox(
    experiment_config={"storage_uri": "sqlite:///experiments.db", "project_name": "async_demo"},
    service_config={"port": 0, "max_concurrency": 4},
)
class AsyncTriage(ClinicalDecisionSupport):
    def __init__(self) -> None:
        self.data_generator = CdsDataGenerator()

    @hc.ehr(workflow="patient-view", num=8)
    async def load_data(self) -> CdsFhirData:
        # Generating FHIR resources is CPU work: keep it off the event loop.
        return await anyio.to_thread.run_sync(self.data_generator.generate)

    @hc.api
    async def triage(self, request: CDSRequest) -> CDSResponse:
        """Pretends to call a remote model, without blocking the loop."""
        await anyio.sleep(0.01)  # stands in for an awaited HTTP call to a model
        return CDSResponse(
            cards=[Card(summary="No urgent findings", indicator="info", source={"label": "triage"})]
        )


async def main(use_case: AsyncTriage) -> None:
    result = await use_case.astart_sandbox(save_data=False)
    print(f"Experiment {result.experiment_id}: {result.status}, {len(result.responses)} responses")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Build the use case before the loop starts: it opens a (blocking) sync tracker.
    with AsyncTriage() as triage:
        asyncio.run(main(triage))
    print(f"Database: {Path('experiments.db').resolve()}")
