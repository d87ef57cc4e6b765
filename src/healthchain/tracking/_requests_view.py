"""Every request of one experiment, for views that need each latency (histograms, failures).

Like ``_queries``, a pure read over an :class:`~._executors.Executor`, run off the event loop.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from ._codecs import from_db_time
from ._executors import Executor
from ._records import RequestRecord
from ._schema import STATUS_OF, requests, static

__all__ = ["list_requests"]

LIST_REQUESTS = static(
    select(
        requests.c.seq,
        requests.c.start_time,
        requests.c.latency_ms,
        requests.c.status_code,
        requests.c.error,
    )
    .where(requests.c.experiment_id == bindparam("b_id"))
    .order_by(requests.c.seq)
)


def list_requests(ex: Executor, experiment_id: str) -> list[RequestRecord] | None:
    """The experiment's requests in the order they were sent; None if it is unknown."""
    if not ex.query(STATUS_OF, {"b_id": experiment_id}):
        return None
    return [
        RequestRecord(seq, from_db_time(start), latency, code, error)  # type: ignore[arg-type]
        for seq, start, latency, code, error in ex.query(LIST_REQUESTS, {"b_id": experiment_id})
    ]
