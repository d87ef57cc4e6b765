"""Run by test_sandbox_timeouts.py in a subprocess: user code that never returns.

``python sandbox_stuck_child.py sync|async ehr|api`` runs two untracked sandbox runs
through ``start_sandbox`` or, under ``asyncio.run``, ``astart_sandbox``, whose sync
``@ehr`` method or sync ``@api`` handler blocks for ever. It prints each run's status,
then ``EXITING``; the parent checks that the process then exits.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from helpers.sandbox_cases import card, new_request

from healthchain.models import CDSRequest, CDSResponse
from healthchain.sandbox import api, ehr, sandbox
from healthchain.use_cases import ClinicalDecisionSupport

NEVER = threading.Event()
STUCK = sys.argv[2]


@sandbox(service_config={"port": 0, "timeout": 0.3})
class Stuck(ClinicalDecisionSupport):
    @ehr(workflow="patient-view", num=2)
    def load(self) -> CDSRequest:
        if STUCK == "ehr":
            NEVER.wait()
        return new_request()

    @api
    def svc(self, request: CDSRequest) -> CDSResponse:
        if STUCK == "api":
            NEVER.wait()
        return CDSResponse(cards=[card()])


async def main() -> list[Any]:
    return [await Stuck().astart_sandbox(save_data=False) for _ in range(2)]


if __name__ == "__main__":
    if sys.argv[1] == "sync":
        results = [Stuck().start_sandbox(save_data=False) for _ in range(2)]
    else:
        results = asyncio.run(main())
    for result in results:
        print(result.status, result.error, flush=True)
    print("EXITING", flush=True)
