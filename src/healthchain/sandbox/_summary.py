"""The end-of-run summary: what one run did, in the few lines a console shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from healthchain._formatting import plural
from healthchain.tracking import ExperimentStatus

from ._client import RequestOutcome
from ._run_metrics import AUTOMATIC_METRICS
from ._service_log import Raised

__all__ = ["FAILURE_KINDS_SHOWN", "run_summary"]

FAILURE_KINDS_SHOWN = 5
"""Distinct failure messages listed (most frequent first), and distinct errors raised
(first seen first); the rest are counted."""
_LONGEST = 300
"""Characters of one message shown."""


def run_summary(
    experiment_id: str | None,
    status: ExperimentStatus,
    outcomes: Sequence[RequestOutcome],
    metrics: Mapping[str, float],
    files_dir: Path | None,
    raised: Iterable[Raised] = (),
    error: str | None = None,
) -> str:
    """``Sandbox run <id>: <STATUS>`` and one indented line per fact: requests, latency
    p50/p95, mean scores, the saved-files folder, failures by message, the errors the
    handlers raised (each counted; its traceback was logged once), the recorded error."""
    failed = [o.error or f"HTTP {o.status_code}" for o in outcomes if not o.ok]
    lines = [
        f"Sandbox run {experiment_id or '(untracked)'}: {status}",
        f"  requests: {len(outcomes):,} ({len(outcomes) - len(failed):,} ok, "
        f"{len(failed):,} failed)",
    ]
    if "latency_p50_ms" in metrics:
        lines.append(
            f"  latency: p50 {metrics['latency_p50_ms']:.1f} ms, "
            f"p95 {metrics['latency_p95_ms']:.1f} ms"
        )
    scores = [f"{k} {v:.3g}" for k, v in metrics.items() if k not in AUTOMATIC_METRICS]
    if scores:
        lines.append(f"  mean scores: {', '.join(scores)}")
    lines.append(f"  files: {files_dir}" if files_dir is not None else "  files: not saved")
    kinds = Counter(failed).most_common()
    for text, count in kinds[:FAILURE_KINDS_SHOWN]:
        lines.append(f"  failed: {count:,} x {_short(text)}")
    if len(kinds) > FAILURE_KINDS_SHOWN:
        rest = sum(count for _, count in kinds[FAILURE_KINDS_SHOWN:])
        others = plural(len(kinds) - FAILURE_KINDS_SHOWN, "other message")
        lines.append(f"  failed: {plural(rest, 'more request')} with {others}")
    errors = list(raised)
    for r in errors[:FAILURE_KINDS_SHOWN]:
        lines.append(
            f"  raised: {_short(r.text)} in {r.where} at {r.origin}, "
            f"{plural(r.count, 'time')} (traceback logged once)"
        )
    if len(errors) > FAILURE_KINDS_SHOWN:
        unlisted = errors[FAILURE_KINDS_SHOWN:]
        lines.append(
            f"  raised: {plural(len(unlisted), 'more kind')} of error, "
            f"{plural(sum(r.count for r in unlisted), 'time')} (tracebacks logged above)"
        )
    if error:
        lines.append(f"  error: {_short(error)}")
    return "\n".join(lines)


def _short(text: str) -> str:
    return text if len(text) <= _LONGEST else f"{text[: _LONGEST - 1]}…"
