"""``ExperimentTracker``: the synchronous facade for scripts and notebooks.

A thin proxy: it owns one :class:`AsyncExperimentTracker` living on one event loop in a
daemon thread, and each method is one call through that loop's portal. It works from
any thread, including one already running an event loop (a Jupyter cell), and from
several threads at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from anyio.from_thread import BlockingPortal

from ._exceptions import describe
from ._lifecycle import CLOSED_WHILE_OPEN, PROCESS_EXITED
from ._portal import LoopThread
from ._records import Experiment, ExperimentStatus, MetricPoint, RequestRecord, RequestStats
from ._settings import DEFAULT_SETTINGS
from ._tracker import AsyncExperimentTracker

if TYPE_CHECKING:
    import pandas

__all__ = ["ExperimentTracker"]

logger = logging.getLogger("healthchain.tracking")

_open_trackers: weakref.WeakSet[ExperimentTracker] = weakref.WeakSet()
# Loop threads of trackers garbage-collected while open, still closing them.
_abandoned: weakref.WeakSet[LoopThread] = weakref.WeakSet()


@atexit.register
def _close_open_trackers() -> None:
    for tracker in list(_open_trackers):
        try:
            tracker._close(PROCESS_EXITED)
        except Exception as exc:  # one tracker's failure must not leave the others open
            logger.error("closing %r at exit failed: %s", tracker, describe(exc))
    for loop_thread in list(_abandoned):
        loop_thread.join()  # their writes land before the interpreter ends the thread


class ExperimentTracker:
    """Synchronous tracker; same arguments and methods as :class:`AsyncExperimentTracker`.

    Opens the database on construction, so a bad storage URI or path fails here.
    Close it with :meth:`close` or ``with``; one left open is closed at interpreter exit.
    """

    def __init__(
        self,
        storage_uri: str = DEFAULT_SETTINGS.storage_uri,
        project_name: str = "healthchain",
        tags: Mapping[str, Any] | None = None,
        heartbeat_interval: float = DEFAULT_SETTINGS.heartbeat_interval,
        *,
        outage_timeout: float = DEFAULT_SETTINGS.outage_timeout,
        max_queued_writes: int = DEFAULT_SETTINGS.max_queued_writes,
        read_only: bool = DEFAULT_SETTINGS.read_only,
    ) -> None:
        tracker = AsyncExperimentTracker(
            storage_uri,
            project_name,
            tags,
            heartbeat_interval,
            outage_timeout=outage_timeout,
            max_queued_writes=max_queued_writes,
            read_only=read_only,
        )
        self._loop_thread = LoopThread(name="healthchain-tracker")
        self._tracker = tracker
        try:
            self._loop_thread.call(tracker.__aenter__)
        except BaseException:
            self._loop_thread.stop(tracker.aclose)
            raise
        _open_trackers.add(self)

    @property
    def portal(self) -> BlockingPortal:
        """The portal into the loop the async tracker lives on."""
        return self._loop_thread.portal

    @property
    def async_tracker(self) -> AsyncExperimentTracker:
        """The tracker this facade drives; await it only on :attr:`portal`'s loop."""
        return self._tracker

    @property
    def storage_uri(self) -> str:
        """The storage URL with any password masked."""
        return self._tracker.storage_uri

    @property
    def project_name(self) -> str:
        """The project new experiments are recorded under."""
        return self._tracker.project_name

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two heartbeats of a running experiment."""
        return self._tracker.heartbeat_interval

    def __repr__(self) -> str:
        state = "open" if self._loop_thread.running else "closed"
        return f"<ExperimentTracker {self.storage_uri!r} project={self.project_name!r} {state}>"

    def close(self) -> None:
        """Write everything queued, release the engine and stop the loop thread. Idempotent.

        Experiments still open (a ``track()`` block in another thread or a suspended
        generator) are ended INTERRUPTED, as :meth:`AsyncExperimentTracker.aclose` does;
        at interpreter exit, with an error saying the process exited while they were open.
        """
        self._close(CLOSED_WHILE_OPEN)

    def _close(self, reason: str) -> None:
        _open_trackers.discard(self)
        self._loop_thread.stop(partial(self._tracker._shutdown, reason))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        loop_thread = getattr(self, "_loop_thread", None)
        if loop_thread is not None and loop_thread.running:
            _warn(f"unclosed {self!r}; use 'with' or call close()", ResourceWarning, source=self)
            _abandoned.add(loop_thread)
            loop_thread.stop_soon(self._tracker.aclose)

    def start_experiment(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        pipeline_config: Mapping[str, Any] | None = None,
        components: Iterable[Mapping[str, Any]] | None = None,
    ) -> str:
        """Record a new RUNNING experiment and return its id."""
        return self._loop_thread.call(
            partial(
                self._tracker.start_experiment,
                name,
                tags=tags,
                pipeline_config=pipeline_config,
                components=components,
            )
        )

    def end_experiment(
        self,
        experiment_id: str,
        status: ExperimentStatus | str = ExperimentStatus.COMPLETED,
        *,
        error: str | BaseException | None = None,
    ) -> None:
        """Set the final status and end time of a RUNNING experiment."""
        return self._loop_thread.call(
            partial(self._tracker.end_experiment, experiment_id, status, error=error)
        )

    def track(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        pipeline_config: Mapping[str, Any] | None = None,
        components: Iterable[Mapping[str, Any]] | None = None,
    ) -> AbstractContextManager[str]:
        """``with tracker.track() as experiment_id:`` — see :meth:`AsyncExperimentTracker.track`."""
        return self._loop_thread.wrap(
            self._tracker.track(
                name, tags=tags, pipeline_config=pipeline_config, components=components
            )
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with its components; ``ExperimentNotFoundError`` if unknown."""
        return self._loop_thread.call(self._tracker.get_experiment, experiment_id)

    def list_experiments(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Sequence[str] | None = None,
    ) -> list[Experiment]:
        """Experiments newest first or by ``order_by``; filters and ordering as in
        :meth:`AsyncExperimentTracker.list_experiments`."""
        return self._loop_thread.call(
            partial(
                self._tracker.list_experiments,
                filters,
                limit=limit,
                offset=offset,
                order_by=order_by,
            )
        )

    def reap_stale(self) -> list[str]:
        """Mark RUNNING experiments silent for over 3 heartbeat intervals as FAILED."""
        return self._loop_thread.call(self._tracker.reap_stale)

    def delete_experiments(self, experiment_ids: Iterable[str]) -> int:
        """Delete experiments and everything recorded with them; returns how many."""
        return self._loop_thread.call(self._tracker.delete_experiments, experiment_ids)

    def log_requests(self, experiment_id: str, records: Sequence[RequestRecord]) -> None:
        """Store per-request records of a run."""
        return self._loop_thread.call(self._tracker.log_requests, experiment_id, records)

    def log_metric(
        self,
        experiment_id: str,
        key: str,
        value: float,
        *,
        step: int | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record one point of a metric; see :meth:`AsyncExperimentTracker.log_metric`."""
        return self._loop_thread.call(
            partial(
                self._tracker.log_metric, experiment_id, key, value, step=step, timestamp=timestamp
            )
        )

    def log_metrics(
        self,
        experiment_id: str,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record several metrics at one step in one write."""
        return self._loop_thread.call(
            partial(
                self._tracker.log_metrics, experiment_id, metrics, step=step, timestamp=timestamp
            )
        )

    def set_files_dir(self, experiment_id: str, files_dir: str | os.PathLike[str]) -> None:
        """Record the folder holding the files this run saved, absolute and resolved."""
        return self._loop_thread.call(self._tracker.set_files_dir, experiment_id, files_dir)

    def log_params(self, experiment_id: str, params: Mapping[str, Any]) -> None:
        """Record params; an equal value again is a no-op, a different one an error."""
        return self._loop_thread.call(self._tracker.log_params, experiment_id, params)

    def get_metric_history(self, experiment_id: str, key: str) -> list[MetricPoint]:
        """Every point of a metric, ordered by step, then timestamp."""
        return self._loop_thread.call(self._tracker.get_metric_history, experiment_id, key)

    def get_metric_values(self, experiment_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` of a metric, ordered by step, then timestamp."""
        return self._loop_thread.call(self._tracker.get_metric_values, experiment_id, key)

    def list_requests(self, experiment_id: str) -> list[RequestRecord]:
        """Every request record of an experiment, in the order they were sent."""
        return self._loop_thread.call(self._tracker.list_requests, experiment_id)

    def to_dataframe(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Sequence[str] | None = None,
    ) -> pandas.DataFrame:
        """``list_experiments(...)`` as a pandas DataFrame (the ``pandas`` extra)."""
        return self._loop_thread.call(
            partial(
                self._tracker.to_dataframe, filters, limit=limit, offset=offset, order_by=order_by
            )
        )

    def request_stats(self, experiment_id: str) -> RequestStats:
        """Request count, failures and latency p50/p95 (ms) of an experiment."""
        return self._loop_thread.call(self._tracker.request_stats, experiment_id)

    def resolve_id(self, prefix: str) -> str:
        """The whole id of the one experiment whose id starts with ``prefix`` (4+ hex digits)."""
        return self._loop_thread.call(self._tracker.resolve_id, prefix)

    def abbreviate_ids(self, experiment_ids: Iterable[str], min_length: int = 8) -> dict[str, str]:
        """Each id's shortest unique prefix of at least ``min_length`` characters."""
        return self._loop_thread.call(self._tracker.abbreviate_ids, experiment_ids, min_length)
