"""Running a use case: the blocking and the async entry, each on its event loop.

``start_sandbox`` → :func:`start` → (the tracker's portal) → :func:`run` → ``Run.execute``.
"""

from __future__ import annotations

import anyio
import anyio.from_thread

from healthchain.data_generators import CdsDataGenerator
from healthchain.tracking import AsyncExperimentTracker, ExperimentStatus
from healthchain.use_cases import BaseUseCase

from ._entry import SandboxSpec
from ._interrupt import Interrupt
from ._options import RunOptions
from ._plan import make_plan
from ._result import SandboxResult
from ._run import Run
from ._saving import prepare_save_dir

__all__ = ["astart", "run", "start"]

_FINAL_WRITE_GRACE = 10.0
"""Added to the tracker's outage bound to bound writing the final status and draining
records once a run is over: the tracker gives up loudly first, this only stops a hang."""


def start(use_case: BaseUseCase, spec: SandboxSpec, options: RunOptions) -> SandboxResult:
    """Run on the tracker's portal loop (or a fresh one), blocking this thread."""
    interrupt = Interrupt()
    tracker = use_case.experiment_tracker
    with interrupt.handling_signals():
        if tracker is not None:
            future = tracker.portal.start_task_soon(
                run, use_case, spec, tracker.async_tracker, interrupt, options
            )
            result = future.result()
        else:
            with anyio.from_thread.start_blocking_portal() as portal:
                result = portal.call(run, use_case, spec, None, interrupt, options)
    interrupt.redeliver()
    return result


async def astart(use_case: BaseUseCase, spec: SandboxSpec, options: RunOptions) -> SandboxResult:
    """Run on the running loop, with an async tracker opened on it."""
    interrupt = Interrupt()
    with interrupt.handling_signals():
        if spec.experiment is not None:
            async with AsyncExperimentTracker(**spec.experiment.tracker_options()) as tracker:
                result = await run(use_case, spec, tracker, interrupt, options)
        else:
            result = await run(use_case, spec, None, interrupt, options)
    interrupt.redeliver()
    return result


async def run(
    use_case: BaseUseCase,
    spec: SandboxSpec,
    tracker: AsyncExperimentTracker | None,
    interrupt: Interrupt,
    options: RunOptions,
) -> SandboxResult:
    """One run on this loop: planned, then executed under the interrupt's cancel scope."""
    plan = make_plan(use_case, options.service_id, spec.service)
    _give_workflow_to_data_generator(use_case, plan.workflow)
    save_dir = await prepare_save_dir(options.save_dir) if options.save_data else None
    final_bound = _FINAL_WRITE_GRACE
    if spec.experiment is not None:
        final_bound += spec.experiment.outage_timeout
    execution = Run(plan, tracker, spec.service, save_dir, interrupt, final_bound)
    with anyio.CancelScope() as scope:
        interrupt.arm(scope.cancel)
        try:
            await execution.execute()
        finally:
            interrupt.disarm()
    if scope.cancelled_caught:
        return execution.result(ExperimentStatus.INTERRUPTED)
    return execution.result(execution.status)


def _give_workflow_to_data_generator(use_case: BaseUseCase, workflow: str) -> None:
    """The documented convention: a ``CdsDataGenerator`` the use case keeps as
    ``self.data_generator`` generates for the ``@ehr`` method's workflow. Any other
    attribute, a generator or not, is the user's to set."""
    generator = vars(use_case).get("data_generator")
    if isinstance(generator, CdsDataGenerator):
        generator.workflow = workflow
