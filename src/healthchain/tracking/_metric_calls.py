"""Metrics and params: the calls of :class:`~healthchain.tracking.AsyncExperimentTracker`
that record what a run measured and how it was set up, and read a metric's history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from . import _metric_reads
from ._exceptions import ExperimentNotFoundError
from ._lifecycle import TrackerLifecycle
from ._metric_input import (
    validate_metric_key,
    validate_metric_value,
    validate_metrics,
    validate_params,
    validate_step,
    validate_timestamp,
)
from ._metric_ops import MetricsOp, ParamsOp
from ._records import MetricPoint
from ._settings import TrackerSettings
from ._steps import StepCounters
from ._validation import validate_id

__all__ = ["MetricCalls"]


class MetricCalls(TrackerLifecycle):
    """``log_metric``, ``log_metrics``, ``log_params``, ``get_metric_history`` and
    ``get_metric_values``."""

    def __init__(self, settings: TrackerSettings) -> None:
        super().__init__(settings)
        self._steps = StepCounters()

    async def log_metric(
        self,
        experiment_id: str,
        key: str,
        value: float,
        *,
        step: int | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record one point of metric ``key``: an int or a float (NaN and infinities too).

        ``step`` (0 to 2**63 - 1) defaults to one more than the key's highest step in the
        experiment (0 for the first), assigned in call order; ``timestamp`` (timezone-aware)
        defaults to now. The experiment may be running or finished.

        Raises:
            ExperimentNotFoundError: No experiment has this id.
            InvalidInputError: A key that is empty or not a string, a value that is not a
                number, a step out of range or a naive timestamp, named.
        """
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        values = [(validate_metric_key(key), validate_metric_value(value))]
        wanted, when = validate_step(step), validate_timestamp(timestamp)
        await self._log_metrics(experiment_id, values, wanted, when, "log_metric")

    async def log_metrics(
        self,
        experiment_id: str,
        metrics: Mapping[str, float],
        *,
        step: int | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record several metrics at one step in one write; see :meth:`log_metric`.

        Without ``step``, each key gets one more than its own highest step.
        """
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        values = validate_metrics(metrics)
        wanted, when = validate_step(step), validate_timestamp(timestamp)
        if values:
            await self._log_metrics(experiment_id, values, wanted, when, "log_metrics")

    async def _log_metrics(
        self,
        experiment_id: str,
        values: list[tuple[str, float]],
        wanted: int | None,
        timestamp: datetime,
        action: str,
    ) -> None:
        when = self._codec.time(timestamp)
        writer = await self._ready()
        # No await from here to the submit: steps are assigned in call order, and the
        # writer applies operations in the order they were queued.
        steps, waiting = self._steps.assign(experiment_id, [k for k, _ in values], wanted)
        op = MetricsOp.of(experiment_id, values, steps, when, explicit=wanted is not None)
        with self._storage_errors(action):
            try:
                future = writer.submit(op)
            except BaseException:
                self._steps.settle(waiting, None)
                raise
            if waiting:
                future.add_done_callback(partial(self._steps.settle_when_done, waiting))
            await future

    async def log_params(self, experiment_id: str, params: Mapping[str, Any]) -> None:
        """Record params: JSON values describing the run, checked like tags.

        Raises:
            ExperimentStateError: A key logged before with a different value; none of
                ``params`` is written (the same value again is a no-op).
            ExperimentNotFoundError: No experiment has this id.
            InvalidInputError: A key or value that tags would refuse, named.
        """
        await self._write_checked(
            experiment_id, "log_params", params, validate_params, partial(ParamsOp, experiment_id)
        )

    async def get_metric_history(self, experiment_id: str, key: str) -> list[MetricPoint]:
        """Every point of metric ``key`` in an experiment, ordered by step, then timestamp."""
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        key = validate_metric_key(key)
        return await self._read_experiment(
            experiment_id,
            "get_metric_history",
            lambda ex: _metric_reads.metric_history(ex, experiment_id, key),
        )

    async def get_metric_values(self, experiment_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` of metric ``key``, ordered as :meth:`get_metric_history`
        orders its points but without timestamps: what a chart draws, read faster."""
        if validate_id(experiment_id) is None:
            raise ExperimentNotFoundError(experiment_id)
        key = validate_metric_key(key)
        return await self._read_experiment(
            experiment_id,
            "get_metric_values",
            lambda ex: _metric_reads.metric_values(ex, experiment_id, key),
        )
