"""Plain records handed to users: experiments, their components and statuses, requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement

__all__ = [
    "Component",
    "Experiment",
    "ExperimentStatus",
    "MetricPoint",
    "RequestRecord",
    "RequestStats",
    "request_failed",
    "request_failed_sql",
]


class ExperimentStatus(StrEnum):
    """Lifecycle of an experiment: RUNNING, then one of the three final states."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"

    @property
    def is_final(self) -> bool:
        """True for COMPLETED, FAILED and INTERRUPTED."""
        return self is not ExperimentStatus.RUNNING


class Component(NamedTuple):
    """One pipeline component as stored in ``pipeline_components``."""

    name: str
    type: str | None
    stage: str | None
    position: int


@dataclass(slots=True, eq=True)
class Experiment:
    """A detached snapshot of one experiment row; reading it never touches the database."""

    id: str
    """UUID string with hyphens (time-ordered, UUIDv7)."""
    name: str
    project: str
    start_time: datetime
    """Timezone-aware UTC."""
    end_time: datetime | None
    """Timezone-aware UTC; None while RUNNING."""
    status: ExperimentStatus
    tags: dict[str, Any]
    pipeline_config: dict[str, Any] | None
    components: tuple[Component, ...] = ()
    error: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    # Read from their own tables, for a whole page at once (see _measures): the fields
    # marked with a "table" are not columns of the experiments table.
    metrics: dict[str, float] = field(default_factory=dict, metadata={"table": "latest_metrics"})
    """Each metric's latest value (highest step, then latest timestamp); NaN as ``nan``."""
    params: dict[str, Any] = field(default_factory=dict, metadata={"table": "params"})
    """Each param's value, as logged."""

    @property
    def duration(self) -> timedelta | None:
        """``end_time - start_time``, or None while the experiment is running."""
        if self.end_time is None:
            return None
        return self.end_time - self.start_time


# What counts as a failed request, written once: an error, no response, or an HTTP
# status of 400 or more. ``request_failed`` is the rule in Python, ``request_failed_sql``
# the same rule as a SQL expression; tests/test_records.py checks that they agree.
FAILED_FROM_STATUS = 400
"""The lowest HTTP status that makes a request a failure."""


def request_failed(error: str | None, status_code: int | None) -> bool:
    """True when a request failed: it has an error, got no response, or a status >= 400."""
    return error is not None or status_code is None or status_code >= FAILED_FROM_STATUS


def request_failed_sql(
    error: ColumnElement[Any], status_code: ColumnElement[Any]
) -> ColumnElement[bool]:
    """:func:`request_failed` as a SQL expression over the two columns."""
    return error.is_not(None) | status_code.is_(None) | (status_code >= FAILED_FROM_STATUS)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request a run sent: when, how long, what came back."""

    index: int
    start_time: datetime
    latency_ms: float
    status_code: int | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the request failed (see :func:`request_failed`)."""
        return request_failed(self.error, self.status_code)


@dataclass(frozen=True, slots=True)
class RequestStats:
    """Summary of an experiment's requests; latencies are None when there were none."""

    count: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None


class MetricPoint(NamedTuple):
    """One logged point of a metric: its step, when it was logged, and its value."""

    step: int
    timestamp: datetime
    """Timezone-aware UTC."""
    value: float
    """A float; NaN and infinities come back as logged."""
