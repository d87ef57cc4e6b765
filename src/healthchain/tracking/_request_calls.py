"""Request records: the calls of :class:`~healthchain.tracking.AsyncExperimentTracker`
that store what each request of a run did (start, latency, HTTP status, error) and read
those records back, one by one or summed up as counts and latency percentiles."""

from __future__ import annotations

from collections.abc import Sequence

from . import _queries
from ._exceptions import ExperimentNotFoundError
from ._lifecycle import TrackerLifecycle
from ._operations import RequestsOp
from ._records import RequestRecord, RequestStats
from ._validation import validate_id, validate_request_records

__all__ = ["RequestCalls"]


class RequestCalls(TrackerLifecycle):
    """``log_requests``, ``list_requests`` and ``request_stats``."""

    async def log_requests(self, experiment_id: str, records: Sequence[RequestRecord]) -> None:
        """Store per-request records (index, start, latency, HTTP status, error) of a run."""
        await self._write_checked(
            experiment_id,
            "log_requests",
            records,
            validate_request_records,
            lambda checked: RequestsOp.of(experiment_id, checked, self._codec),
        )

    async def list_requests(self, experiment_id: str) -> list[RequestRecord]:
        """Every request record of an experiment, in the order they were sent."""
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        return await self._read_experiment(
            experiment_id, "list_requests", lambda ex: _queries.list_requests(ex, experiment_id)
        )

    async def request_stats(self, experiment_id: str) -> RequestStats:
        """Request count, failures and latency p50/p95 (ms) of an experiment."""
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        return await self._read_experiment(
            experiment_id, "request_stats", lambda ex: _queries.request_stats(ex, experiment_id)
        )
