"""``SandboxResult``: what one sandbox run did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthchain.tracking import ExperimentStatus

from ._client import RequestOutcome
from ._exceptions import SandboxRunError
from ._run_metrics import AUTOMATIC_METRICS

__all__ = ["SandboxResult"]


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
    """The run's own folder of saved requests and responses, absolute:
    ``<save_dir>/<experiment_id>/`` (``<save_dir>/untracked-<uuid4>/`` when tracking is
    off); None when ``save_data`` was False."""
    feedback: Mapping[str, int] = field(default_factory=dict)
    """CDS Hooks feedback the service received during the run: count by outcome
    (``accepted``, ``overridden``)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """What the run measured, as a tracked run logs it: ``requests``, ``failures``,
    ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``, ``requests_per_s``, then
    each ``@score``'s mean over the scored responses (NaN scores left out). Each
    response's own scores are in :attr:`outcomes`."""

    @property
    def responses(self) -> list[Any]:
        """The valid responses (``CDSResponse`` models for CDS), in request order."""
        return [o.response for o in self.outcomes if o.response is not None]

    @property
    def failures(self) -> list[RequestOutcome]:
        """The requests that failed, in request order."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def mean_scores(self) -> dict[str, float]:
        """Each score's mean over the run's scored responses (the score part of
        :attr:`metrics`); empty without ``@score`` methods."""
        return {k: v for k, v in self.metrics.items() if k not in AUTOMATIC_METRICS}

    def raise_for_status(self) -> None:
        """Raise :class:`SandboxRunError` unless the run COMPLETED."""
        if self.status is not ExperimentStatus.COMPLETED:
            which = f"experiment {self.experiment_id}" if self.experiment_id else "sandbox run"
            raise SandboxRunError(f"{which} ended {self.status}: {self.error}")
