"""Run by test_sandbox_signals.py in a subprocess: a sandbox whose handler never answers.

``python sandbox_interrupt_child.py STORAGE_URI sync|async PORT`` runs it through
``start_sandbox`` or, under ``asyncio.run``, ``astart_sandbox``, its service listening on
127.0.0.1:PORT. It prints ``READY`` once the first request reached the handler (the
RUNNING row is committed by then), so the parent knows when to send its signal.
"""

from __future__ import annotations

import asyncio
import sys

import anyio
import anyio.to_thread
from helpers.sandbox_cases import new_request

from healthchain.models import CDSRequest, CDSResponse
from healthchain.sandbox import api, ehr, sandbox
from healthchain.use_cases import ClinicalDecisionSupport


@sandbox(
    experiment_config={"storage_uri": sys.argv[1], "project_name": "signals"},
    service_config={"host": "127.0.0.1", "port": int(sys.argv[3])},
)
class NeverAnswers(ClinicalDecisionSupport):
    @ehr(workflow="patient-view", num=3)
    def load(self) -> CDSRequest:
        return new_request()

    @api
    async def svc(self, request: CDSRequest) -> CDSResponse:
        print("READY", flush=True)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def main() -> None:
    use_case = await anyio.to_thread.run_sync(NeverAnswers)
    await use_case.astart_sandbox(save_data=False)


if __name__ == "__main__":
    if sys.argv[2] == "sync":
        NeverAnswers().start_sandbox(save_data=False)
    else:
        asyncio.run(main())
    print("RETURNED", flush=True)
