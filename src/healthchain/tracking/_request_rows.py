"""Request rows as records: the lean loop, and the tolerant one for rows another writer
left with values the tracker never writes (see ``_rows`` for the experiment rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._codecs import from_db_time, scores_from_json
from ._records import RequestRecord
from ._rows import _UNREADABLE, _UNREADABLE_ROW, _json, _short, logger

__all__ = ["request_records"]


def request_records(experiment_id: str, rows: Sequence[Any]) -> list[RequestRecord]:
    """Rows of (seq, start_time, latency_ms, status_code, error, scores) as records.

    A request row another writer left unreadable is skipped with a warning when its
    ``start_time`` is not a time or its ``latency_ms`` not a number (it cannot be placed
    on a chart); a ``status_code`` that is not an integer reads as None (no readable
    response, so a failed request, as the SQL count has it); ``scores`` that are not
    scores as the tracker writes them (see ``_codecs``) read as None.
    """
    time, json, scores_of = from_db_time, _json, scores_from_json
    try:
        # ``+ 0.0`` and ``| 0`` cost next to nothing and raise on what is not a number
        return [
            RequestRecord(
                seq,
                time(start),  # type: ignore[arg-type]
                latency + 0.0,
                None if code is None else code | 0,
                error,
                None if scores is None else scores_of(json(scores)),
            )
            for seq, start, latency, code, error, scores in rows
        ]
    except _UNREADABLE_REQUEST:
        return _tolerant_requests(experiment_id, rows)


def _tolerant_requests(experiment_id: str, rows: Sequence[Any]) -> list[RequestRecord]:
    out: list[RequestRecord] = []
    for seq, start, latency, code, error, stored in rows:
        try:
            when = from_db_time(start)
            if when is None or not isinstance(latency, int | float):
                raise ValueError
        except _UNREADABLE_ROW:
            logger.warning(
                "experiment %s: request %s is skipped: its start_time %s or latency_ms %s "
                "cannot be read",
                experiment_id,
                seq,
                _short(start),
                _short(latency),
            )
            continue
        if code is not None and code.__class__ is not int:
            logger.warning(
                "experiment %s: request %s: its status_code %s is not an integer; shown as "
                "no response",
                experiment_id,
                seq,
                _short(code),
            )
            code = None
        out.append(
            RequestRecord(
                seq, when, float(latency), code, error, _scores(experiment_id, seq, stored)
            )
        )
    return out


def _scores(experiment_id: str, seq: Any, stored: Any) -> dict[str, float] | None:
    if stored is None:
        return None
    try:
        return scores_from_json(_json(stored))
    except _UNREADABLE_REQUEST:
        logger.warning(
            "experiment %s: request %s: its scores %s cannot be read; shown as none",
            experiment_id,
            seq,
            _short(stored),
        )
        return None


_UNREADABLE_REQUEST = (*_UNREADABLE_ROW, *_UNREADABLE)
