"""One sandbox run = one experiment: serve the handler, send the EHR's requests, record it all."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from starlette.exceptions import HTTPException

from healthchain.data_generators import CdsDataGenerator
from healthchain.pipeline import Pipeline
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentStatus,
    ExperimentTracker,
    RequestRecord,
    StorageError,
)
from healthchain.use_cases import BaseUseCase, Service

from ._callables import as_async, is_async_callable
from ._client import EHRClient, Exchange, RequestOutcome
from ._config import ExperimentConfig, ServiceConfig
from ._exceptions import SandboxConfigError, SandboxDefinitionError, SandboxRunError
from ._handlers import find_handlers
from ._interrupt import Interrupt
from ._saving import ExchangeWriter, prepare_save_dir
from ._server import collapse_exception_groups, serve

__all__ = ["RequestOutcome", "Runner", "SandboxResult"]

logger = logging.getLogger("healthchain.sandbox")

T = TypeVar("T")

_FINAL_WRITE_GRACE = 10.0
"""Added to the tracker's outage bound to bound writing the final status and draining
records once a run is over: the tracker gives up loudly first, this only stops a hang."""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What one sandbox run did: its experiment, final status and every request's outcome."""

    experiment_id: str | None
    """The recorded experiment's id; None when tracking is off."""
    status: ExperimentStatus
    """COMPLETED, FAILED or INTERRUPTED."""
    service_url: str | None
    """Base URL the service listened on."""
    outcomes: tuple[RequestOutcome, ...] = ()
    """One entry per finished request, in request order."""
    error: str | None = None
    """The error summary recorded with a FAILED or INTERRUPTED experiment."""
    save_dir: Path | None = None
    """Where requests and responses were saved; None when ``save_data`` was False."""
    feedback: Mapping[str, int] = field(default_factory=dict)
    """CDS Hooks feedback the service received during the run: count by outcome
    (``accepted``, ``overridden``)."""

    @property
    def responses(self) -> list[Any]:
        """The valid responses (``CDSResponse`` models for CDS), in request order."""
        return [o.response for o in self.outcomes if o.response is not None]

    @property
    def failures(self) -> list[RequestOutcome]:
        """The requests that failed, in request order."""
        return [o for o in self.outcomes if not o.ok]

    def raise_for_status(self) -> None:
        """Raise :class:`SandboxRunError` unless the run COMPLETED."""
        if self.status is not ExperimentStatus.COMPLETED:
            which = f"experiment {self.experiment_id}" if self.experiment_id else "sandbox run"
            raise SandboxRunError(f"{which} ended {self.status}: {self.error}")


class Runner:
    """What ``@sandbox`` attaches to a use case class: its options and how to run it."""

    def __init__(self, experiment: ExperimentConfig | None, service: ServiceConfig) -> None:
        self.experiment = experiment
        self.service = service

    def open_tracker(self) -> ExperimentTracker | None:
        """The sync tracker for a new instance; None when tracking is off."""
        if self.experiment is None:
            return None
        return ExperimentTracker(**self.experiment.tracker_options())

    def start(
        self,
        use_case: BaseUseCase,
        *,
        service_id: str | None = None,
        save_data: bool = True,
        save_dir: str = "./output/",
    ) -> SandboxResult:
        """Run on the tracker's portal loop (or a fresh one), blocking this thread."""
        interrupt = Interrupt()
        tracker = use_case.experiment_tracker
        with interrupt.handling_signals():
            if tracker is not None:
                future = tracker.portal.start_task_soon(
                    self._run,
                    use_case,
                    tracker.async_tracker,
                    interrupt,
                    _Options(service_id, save_data, save_dir),
                )
                result = future.result()
            else:
                with anyio.from_thread.start_blocking_portal() as portal:
                    result = portal.call(
                        self._run,
                        use_case,
                        None,
                        interrupt,
                        _Options(service_id, save_data, save_dir),
                    )
        interrupt.redeliver()
        return result

    async def astart(
        self,
        use_case: BaseUseCase,
        *,
        service_id: str | None = None,
        save_data: bool = True,
        save_dir: str = "./output/",
    ) -> SandboxResult:
        """Run on the running loop, with an async tracker opened on it."""
        interrupt = Interrupt()
        options = _Options(service_id, save_data, save_dir)
        with interrupt.handling_signals():
            if self.experiment is not None:
                async with AsyncExperimentTracker(**self.experiment.tracker_options()) as tracker:
                    result = await self._run(use_case, tracker, interrupt, options)
            else:
                result = await self._run(use_case, None, interrupt, options)
        interrupt.redeliver()
        return result

    async def _run(
        self,
        use_case: BaseUseCase,
        tracker: AsyncExperimentTracker | None,
        interrupt: Interrupt,
        options: _Options,
    ) -> SandboxResult:
        plan = _plan(use_case, options.service_id, self.service)
        out_dir = await prepare_save_dir(options.save_dir) if options.save_data else None
        final_bound = _FINAL_WRITE_GRACE
        if self.experiment is not None:
            final_bound += self.experiment.outage_timeout
        run = _Run(plan, tracker, self.service, out_dir, interrupt, final_bound)
        with anyio.CancelScope() as scope:
            interrupt.arm(scope.cancel)
            try:
                await run.execute()
            finally:
                interrupt.disarm()
        if scope.cancelled_caught:
            return run.result(ExperimentStatus.INTERRUPTED)
        return run.result(run.status)


@dataclass(frozen=True, slots=True)
class _Options:
    service_id: str | None
    save_data: bool
    save_dir: str


@dataclass(slots=True)
class _Plan:
    """Everything a run needs, resolved before anything is started or written."""

    use_case: BaseUseCase
    name: str
    service: Service
    app: Any
    path: str
    ehr_name: str
    workflow: str
    num: int
    pipeline_config: dict[str, Any] | None
    components: list[Mapping[str, Any]] | None
    loop_code: str
    """The user's code that runs on the event loop, named in a blocked-loop error."""
    log: _ServiceLog
    bearer_token: Callable[[str], str] | None


@dataclass(slots=True)
class _ServiceLog:
    """What the service saw, recorded on the sandbox's side."""

    errors: dict[str, str] = field(default_factory=dict)
    """Why the handler failed, by hookInstance: the 500 body does not say, the run does."""
    feedback: Counter[str] = field(default_factory=Counter)
    """Feedback received, counted by outcome."""


def _recording_errors(
    handler: Callable[[Any], Awaitable[Any]], name: str, log: _ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    async def call(request: Any) -> Any:
        try:
            return await handler(request)
        except HTTPException:
            raise  # an answer the handler chose, such as 412: the body carries it
        except Exception as exc:
            key = str(getattr(request, "hookInstance", ""))
            log.errors[key] = f"handler {name!r} raised {type(exc).__name__}: {exc}"
            raise

    return call


def _counting_feedback(
    handler: Callable[[Any], Awaitable[Any]] | None, log: _ServiceLog
) -> Callable[[Any], Awaitable[Any]]:
    async def take(feedback: Any) -> Any:
        log.feedback.update(item.outcome for item in feedback.feedback)
        return await handler(feedback) if handler is not None else None

    return take


def _plan(use_case: BaseUseCase, service_id: str | None, config: ServiceConfig) -> _Plan:
    cls = type(use_case)
    handlers = find_handlers(cls)
    if handlers.api is None:
        raise SandboxDefinitionError(
            f"{cls.__name__} has no @api handler; mark the method that answers requests "
            "with @healthchain.api"
        )
    if handlers.ehr is None or handlers.ehr_spec is None:
        raise SandboxDefinitionError(
            f"{cls.__name__} has no @ehr method; mark the method that returns the EHR's "
            "data with @healthchain.ehr(workflow=...)"
        )
    if service_id is not None and (not isinstance(service_id, str) or not service_id):
        raise SandboxConfigError(f"service_id must be a non-empty string, got {service_id!r}")
    workflow = handlers.ehr_spec.workflow
    handler = getattr(use_case, handlers.api)
    spec = handlers.api_spec
    doc = (getattr(handler, "__doc__", None) or "").strip()
    log = _ServiceLog()
    feedback = getattr(use_case, handlers.feedback) if handlers.feedback else None
    service = Service(
        id=service_id or handlers.api,
        hook=workflow,
        handler=_recording_errors(as_async(handler), handlers.api, log),
        name=handlers.api,
        title=spec.title or handlers.api.replace("_", " ").strip().capitalize() or handlers.api,
        description=spec.description
        or (doc.splitlines()[0] if doc else f"{cls.__name__} on {workflow}"),
        prefetch=spec.prefetch
        if spec.prefetch is not None
        else use_case.default_prefetch(workflow),
        usage_requirements=spec.usage_requirements,
        feedback=_counting_feedback(as_async(feedback) if feedback else None, log),
    )
    bearer_token: Callable[[str], str] | None = None
    verifier = None
    if config.jwt:
        from healthchain.use_cases._jwt import generate_key_pair

        signer, verifier = generate_key_pair()
        bearer_token = signer.token
    try:
        app = use_case.build_app(service, cors_origins=config.cors_origins, verifier=verifier)
        path = use_case.service_path(service.id)
    except NotImplementedError as exc:
        raise SandboxDefinitionError(str(exc)) from exc

    for value in vars(use_case).values():
        if isinstance(value, CdsDataGenerator):
            value.workflow = workflow

    on_loop = [
        f"the async {kind} {name!r}"
        for kind, name in (("@api handler", handlers.api), ("@ehr method", handlers.ehr))
        if is_async_callable(getattr(use_case, name))
    ]
    pipeline = getattr(use_case, "pipeline", None)
    pipeline_config: dict[str, Any] | None = None
    components: list[Mapping[str, Any]] | None = None
    if isinstance(pipeline, Pipeline):
        pipeline_config = pipeline.config
        components = list(pipeline.tracked_components())
    return _Plan(
        use_case=use_case,
        name=cls.__name__,
        service=service,
        app=app,
        path=path,
        ehr_name=handlers.ehr,
        workflow=workflow,
        num=handlers.ehr_spec.num,
        pipeline_config=pipeline_config,
        components=components,
        loop_code=" or ".join(on_loop) or "async code on the sandbox's event loop",
        log=log,
        bearer_token=bearer_token,
    )


class _Run:
    """The part of a run between the service starting and stopping."""

    def __init__(
        self,
        plan: _Plan,
        tracker: AsyncExperimentTracker | None,
        service: ServiceConfig,
        out_dir: Path | None,
        interrupt: Interrupt,
        final_bound: float,
    ) -> None:
        self.plan = plan
        self.final_bound = final_bound
        self.interrupt = interrupt
        self.tracker = tracker
        self.service = service
        self.out_dir = out_dir
        self.experiment_id: str | None = None
        self.url: str | None = None
        self.outcomes: list[RequestOutcome] = []
        self.finished = 0
        self.status = ExperimentStatus.COMPLETED
        self.error: str | None = None
        self.save_error: str | None = None

    def result(self, status: ExperimentStatus) -> SandboxResult:
        return SandboxResult(
            experiment_id=self.experiment_id,
            status=status,
            service_url=self.url,
            outcomes=tuple(sorted(self.outcomes, key=lambda outcome: outcome.index)),
            error=self.error,
            save_dir=self.out_dir,
            feedback=dict(self.plan.log.feedback),
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
                await self._send(url)
            except BaseException as exc:
                self.status, self.error = self._describe_abort(exc)
                await self._finish()
                raise
            failures = [o for o in self.outcomes if not o.ok]
            errors = [self.save_error] if self.save_error is not None else []
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
        """Write the final status; shielded and bounded so an interrupt cannot skip it."""
        level = {
            ExperimentStatus.COMPLETED: logging.INFO,
            ExperimentStatus.INTERRUPTED: logging.WARNING,
        }.get(self.status, logging.ERROR)
        logger.log(
            level,
            "Sandbox run %s: %s%s",
            self.experiment_id or "(untracked)",
            self.status,
            f" - {self.error}" if self.error else "",
        )
        if self.tracker is None or self.experiment_id is None:
            return
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
        sinks: list[_Batcher[Any]] = []
        records: _Batcher[RequestRecord] | None = None
        files: _Batcher[Exchange] | None = None
        if self.tracker is not None and self.experiment_id is not None:
            tracker, experiment_id = self.tracker, self.experiment_id

            async def log(batch: list[RequestRecord]) -> None:
                await tracker.log_requests(experiment_id, batch)

            records = _Batcher("request records", log, bound=self.final_bound)
            sinks.append(records)
        writer: ExchangeWriter | None = None
        if self.out_dir is not None:
            writer = ExchangeWriter(self.out_dir, self.experiment_id or str(uuid.uuid4()))
            write = writer.write

            async def save(batch: list[Exchange]) -> None:
                await anyio.to_thread.run_sync(write, batch)

            files = _Batcher("saved requests", save, bound=self.final_bound)
            sinks.append(files)
        progress = _Progress.create(plan.num)

        def on_exchange(exchange: Exchange) -> None:
            self.finished += 1
            exchange = _with_handler_error(exchange, plan.log)
            outcome = exchange.outcome
            self.outcomes.append(outcome)  # kept as they come, should the run be cut short
            if records is not None:
                records.put(
                    RequestRecord(
                        outcome.index,
                        outcome.start_time,
                        outcome.latency_ms,
                        outcome.status_code,
                        outcome.error,
                    )
                )
            if files is not None:
                files.put(exchange)
            if progress is not None:
                progress.advance()

        try:
            with collapse_exception_groups():
                async with anyio.create_task_group() as tg:
                    for sink in sinks:
                        tg.start_soon(sink.run)
                    try:
                        await client.run(plan.num, on_exchange)
                    finally:
                        for sink in sinks:
                            sink.close()
        finally:
            if progress is not None:
                progress.stop()
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


def _with_handler_error(exchange: Exchange, log: _ServiceLog) -> Exchange:
    """A 500's error names the handler's exception, recorded when the service caught it."""
    if exchange.outcome.status_code != 500 or not log.errors or exchange.request_body is None:
        return exchange
    try:
        key = str(json.loads(exchange.request_body).get("hookInstance"))
    except (ValueError, AttributeError):
        return exchange
    message = log.errors.pop(key, None)
    if message is None:
        return exchange
    outcome = dataclasses.replace(exchange.outcome, error=f"HTTP 500: {message}")
    return dataclasses.replace(exchange, outcome=outcome)


class _Batcher(Generic[T]):
    """Collects items on the loop and hands them to ``flush`` in batches, off the hot path.

    A batch closes ``interval`` seconds after its first item arrived or when it holds
    ``max_batch`` items, so a fast run makes a few large writes rather than many small
    ones. Draining is shielded from cancellation, and bounded once closed.
    """

    def __init__(
        self,
        what: str,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        bound: float,
        max_batch: int = 256,
        interval: float = 0.2,
    ) -> None:
        self._what = what
        self._bound = bound
        self._dropped = 0
        self._flush = flush
        self._max_batch = max_batch
        self._interval = interval
        self._send, self._receive = anyio.create_memory_object_stream[T](math.inf)
        self._scope = anyio.CancelScope(shield=True)
        self._closing = anyio.Event()
        self.error: BaseException | None = None

    def put(self, item: T) -> None:
        self._send.send_nowait(item)

    def close(self) -> None:
        """No more items: flush what is left now, within a bounded time."""
        self._send.close()
        self._closing.set()
        self._scope.deadline = anyio.current_time() + self._bound

    def _fill(self, batch: list[T]) -> None:
        while len(batch) < self._max_batch:
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                return

    async def run(self) -> None:
        with self._scope:
            async with self._receive:
                async for item in self._receive:
                    batch = [item]
                    self._fill(batch)
                    if len(batch) < self._max_batch and not self._closing.is_set():
                        # Let the batch grow; waiting on an event (never on the stream)
                        # cannot lose an item when the wait times out.
                        with anyio.move_on_after(self._interval):
                            await self._closing.wait()
                        self._fill(batch)
                    if self.error is not None:
                        self._dropped += len(batch)  # counted, and reported below
                        continue
                    try:
                        await self._flush(batch)
                    except Exception as exc:
                        logger.error("Writing %d %s failed: %s", len(batch), self._what, exc)
                        self.error = exc
        if self._scope.cancelled_caught and self.error is None:
            self.error = TimeoutError(
                f"writing {self._what} did not finish within {self._bound:g} s"
            )
        if self._dropped:
            logger.error(
                "%d further %s were not written after that failure", self._dropped, self._what
            )


class _Progress:
    """A rich progress bar for the requests, drawn only when stderr is a terminal."""

    def __init__(self, num: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        # Refreshed from the loop at most 10 times a second: no refresh thread to join.
        self._progress = Progress(console=Console(stderr=True), auto_refresh=False, transient=True)
        self._task = self._progress.add_task("Sending requests", total=num)
        self._last = 0.0
        self._progress.start()

    @classmethod
    def create(cls, num: int) -> _Progress | None:
        return cls(num) if sys.stderr.isatty() else None

    def advance(self) -> None:
        self._progress.advance(self._task)
        now = anyio.current_time()
        if now - self._last >= 0.1:
            self._last = now
            self._progress.refresh()

    def stop(self) -> None:
        self._progress.refresh()
        self._progress.stop()
