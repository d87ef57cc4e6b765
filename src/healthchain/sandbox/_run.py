"""``Run``: the part of a run between the service starting and stopping: one experiment
started, the EHR's requests sent and recorded, its final status written."""

from __future__ import annotations

import dataclasses
import logging
import signal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentStatus,
    RequestRecord,
    StorageError,
)

from ._batcher import Batcher
from ._client import EHRClient, Exchange, RequestOutcome
from ._config import ServiceConfig
from ._exception_groups import collapse_exception_groups
from ._interrupt import Interrupt
from ._plan import Plan
from ._progress import ProgressBar
from ._result import SandboxResult
from ._run_metrics import run_metrics
from ._saving import ExchangeWriter, make_run_dir, untracked_run_id
from ._scoring import Scoring
from ._server import serve
from ._service_log import with_handler_error
from ._summary import run_summary

__all__ = ["Run"]

logger = logging.getLogger("healthchain.sandbox")


class Run:
    """The part of a run between the service starting and stopping."""

    def __init__(
        self,
        plan: Plan,
        tracker: AsyncExperimentTracker | None,
        service: ServiceConfig,
        save_dir: Path | None,
        interrupt: Interrupt,
        final_bound: float,
    ) -> None:
        self.plan = plan
        self.final_bound = final_bound
        self.interrupt = interrupt
        self.tracker = tracker
        self.service = service
        self.save_dir = save_dir
        self.files_dir: Path | None = None
        """The run's own folder in ``save_dir``, once made."""
        self.experiment_id: str | None = None
        self.url: str | None = None
        self.outcomes: list[RequestOutcome] = []
        self.finished = 0
        self.status = ExperimentStatus.COMPLETED
        self.error: str | None = None
        self.save_error: str | None = None
        self.scores: dict[int, dict[str, float]] = {}
        """Each scored response's scores, by request index."""
        self.scoring_error: str | None = None
        self.metrics: dict[str, float] = {}

    def result(self, status: ExperimentStatus) -> SandboxResult:
        outcomes = sorted(self.outcomes, key=lambda outcome: outcome.index)
        if self.scores:
            scores = self.scores
            outcomes = [
                dataclasses.replace(o, scores=scores[o.index]) if o.index in scores else o
                for o in outcomes
            ]
        return SandboxResult(
            experiment_id=self.experiment_id,
            status=status,
            service_url=self.url,
            outcomes=tuple(outcomes),
            error=self.error,
            save_dir=self.files_dir,
            feedback=dict(self.plan.log.feedback),
            metrics=dict(self.metrics),
        )

    async def execute(self) -> None:
        plan = self.plan
        async with serve(plan.app, self.service.host, self.service.port) as url:
            self.url = url
            if self.tracker is not None:
                # Shielded: once the row is written, its id must reach the code that ends it.
                with anyio.CancelScope(shield=True):
                    self.experiment_id = await self.tracker.start_experiment(
                        plan.name,
                        pipeline_config=plan.pipeline_config,
                        components=plan.components,
                    )
                logger.info("Experiment %s RUNNING (%s)", self.experiment_id, plan.name)
            try:
                await self._make_files_dir()
                await self._send(url)
            except BaseException as exc:
                self.status, self.error = self._describe_abort(exc)
                await self._finish()
                raise
            failures = [o for o in self.outcomes if not o.ok]
            errors = [e for e in (self.scoring_error, self.save_error) if e is not None]
            if failures:
                first = failures[0]
                errors.insert(
                    0,
                    f"{len(failures)} of {plan.num} requests failed; "
                    f"first (request {first.index}): {first.error}",
                )
            if errors:
                self.status = ExperimentStatus.FAILED
                self.error = "; ".join(errors)
            await self._finish()

    def _summary(self) -> str:
        return run_summary(
            self.experiment_id,
            self.status,
            self.outcomes,
            self.metrics,
            self.files_dir,
            self.plan.log.raised.values(),
            self.error,
        )

    async def _make_files_dir(self) -> None:
        """``<save_dir>/<experiment id>/``, recorded with the experiment before any file."""
        if self.save_dir is None:
            return
        self.files_dir = await make_run_dir(self.save_dir, self.experiment_id or untracked_run_id())
        if self.tracker is not None and self.experiment_id is not None:
            await self.tracker.set_files_dir(self.experiment_id, self.files_dir)

    def _describe_abort(self, exc: BaseException) -> tuple[ExperimentStatus, str]:
        done = f"after {self.finished} of {self.plan.num} requests"
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            signum = self.interrupt.signum
            if signum is not None:
                return (
                    ExperimentStatus.INTERRUPTED,
                    f"interrupted by {signal.Signals(signum).name} {done}",
                )
            return ExperimentStatus.INTERRUPTED, f"cancelled {done}"
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            return ExperimentStatus.INTERRUPTED, f"interrupted by {type(exc).__name__} {done}"
        return ExperimentStatus.FAILED, f"{type(exc).__name__}: {exc} ({done})"

    async def _finish(self) -> None:
        """Write the run's metrics and final status; shielded and bounded so an interrupt
        cannot skip them."""
        self.metrics = run_metrics(self.outcomes, self.scores.values())
        try:
            await self._record_end()
        finally:
            # Last, so it names the status recorded (a lost metrics write fails the run).
            level = {
                ExperimentStatus.COMPLETED: logging.INFO,
                ExperimentStatus.INTERRUPTED: logging.WARNING,
            }.get(self.status, logging.ERROR)
            logger.log(level, "%s", self._summary())

    async def _record_end(self) -> None:
        if self.tracker is None or self.experiment_id is None:
            return
        try:
            # Before the end: whoever sees the run ended sees what it measured.
            with anyio.fail_after(self.final_bound, shield=True):
                await self.tracker.log_metrics(self.experiment_id, self.metrics)
        except (StorageError, TimeoutError) as exc:
            logger.error(
                "Sandbox run %s: its metrics were not recorded (%s)", self.experiment_id, exc
            )
            if self.status is ExperimentStatus.COMPLETED:
                self.status = ExperimentStatus.FAILED
            self.error = "; ".join(
                e for e in (self.error, f"the run's metrics were not recorded: {exc}") if e
            )
        try:
            with anyio.fail_after(self.final_bound, shield=True):
                await self.tracker.end_experiment(self.experiment_id, self.status, error=self.error)
        except (StorageError, TimeoutError) as exc:
            logger.error(
                "Sandbox run %s: its final status %s was not recorded (%s); the experiment "
                "stays RUNNING until reap_stale() marks it FAILED once its heartbeat stops",
                self.experiment_id,
                self.status,
                exc,
            )
            raise

    async def _send(self, url: str) -> None:
        plan = self.plan
        client = EHRClient(
            plan.use_case,
            ehr_name=plan.ehr_name,
            workflow=plan.workflow,
            base_url=url,
            path=plan.path,
            timeout=self.service.timeout,
            max_concurrency=self.service.max_concurrency,
            loop_code=plan.loop_code,
            prefetch=plan.service.prefetch,
            bearer_token=plan.bearer_token,
        )
        sinks: list[Batcher[Any]] = []
        records: Batcher[RequestRecord] | None = None
        files: Batcher[Exchange] | None = None
        if self.tracker is not None and self.experiment_id is not None:
            tracker, experiment_id = self.tracker, self.experiment_id

            async def log(batch: list[RequestRecord]) -> None:
                await tracker.log_requests(experiment_id, batch)

            records = Batcher("request records", log, bound=self.final_bound)
            sinks.append(records)
        writer: ExchangeWriter | None = None
        if self.files_dir is not None:
            writer = ExchangeWriter(self.files_dir)
            write = writer.write

            async def save(batch: list[Exchange]) -> None:
                await anyio.to_thread.run_sync(write, batch)

            files = Batcher("saved requests", save, bound=self.final_bound)
            sinks.append(files)
        progress = ProgressBar.create(plan.num)
        # A scored response's record waits here for its scores (held in memory, at most
        # one per request of the run), so each request row is written once, complete.
        unscored: dict[int, RequestRecord] = {}

        def on_scored(index: int, scores: dict[str, float]) -> None:
            self.scores[index] = scores
            r = unscored.pop(index, None)
            if r is not None and records is not None:
                records.put(
                    RequestRecord(
                        r.index, r.start_time, r.latency_ms, r.status_code, r.error, scores
                    )
                )

        scoring = Scoring(plan.scorers, on_scored) if plan.scorers else None

        def on_exchange(exchange: Exchange) -> None:
            self.finished += 1
            exchange = with_handler_error(exchange, plan.log)
            outcome = exchange.outcome
            self.outcomes.append(outcome)  # kept as they come, should the run be cut short
            if records is not None:
                record = RequestRecord(
                    outcome.index,
                    outcome.start_time,
                    outcome.latency_ms,
                    outcome.status_code,
                    outcome.error,
                )
                if scoring is not None and outcome.ok:
                    unscored[outcome.index] = record
                else:
                    records.put(record)
            if scoring is not None and outcome.ok:
                scoring.put(outcome.index, exchange.request, outcome.response)
            if files is not None:
                files.put(exchange)
            if progress is not None:
                progress.advance()

        try:
            with collapse_exception_groups():
                async with anyio.create_task_group() as tg:
                    for sink in sinks:
                        tg.start_soon(sink.run)
                    if scoring is not None:
                        tg.start_soon(scoring.run)
                    try:
                        await client.run(plan.num, on_exchange)
                        if scoring is not None:
                            await scoring.finish()
                    finally:
                        if records is not None:
                            # Cut short: the responses not yet scored are recorded unscored.
                            for record in unscored.values():
                                records.put(record)
                            unscored.clear()
                        if scoring is not None:
                            scoring.close()  # its queue, left unscored, is let go
                        for sink in sinks:
                            sink.close()
        finally:
            if progress is not None:
                progress.stop()
            if scoring is not None:
                self.scoring_error = scoring.error
        if records is not None and records.error is not None:
            raise records.error
        if files is not None and files.error is not None and writer is not None:
            # Like a failed request, a failed save fails the run; it is not an error of
            # the sandbox itself, which StorageError (the records) is.
            self.save_error = (
                f"saving requests and responses failed: {files.error}; {writer.saved} of "
                f"{plan.num} requests were saved in {str(writer.directory)!r} (free space "
                "there, or pass another save_dir or save_data=False)"
            )
