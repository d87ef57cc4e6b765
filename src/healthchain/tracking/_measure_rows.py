"""A list's metric and param rows onto its records, each value read as ``_rows`` reads
an experiment's: a value another writer left that cannot be read is left out, named in
a warning, and never breaks the list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._records import Experiment
from ._rows import _UNREADABLE, _UNREADABLE_ROW, _json, _short, _TooDeep, is_number, logger

__all__ = ["add_metrics", "add_params"]

_NAN = float("nan")


def add_metrics(by_id: Mapping[str, Experiment], rows: Sequence[Any]) -> None:
    """Rows of (experiment_id, key, value) into each record's ``metrics``.

    NULL reads as NaN (how NaN is stored); a value another writer left that is not a
    number is left out, with a warning naming the experiment, the metric and the value.
    """
    nan = _NAN
    try:
        for id_, key, value in rows:
            # ``- 0.0`` makes an int a float, keeps -0.0 (``+ 0.0`` would not) and
            # raises on what is not a number
            by_id[id_].metrics[key] = nan if value is None else value - 0.0
    except _UNREADABLE_ROW:
        for id_, key, value in rows:
            if value is None or is_number(value):
                by_id[id_].metrics[key] = nan if value is None else float(value)
            else:
                by_id[id_].metrics.pop(key, None)
                logger.warning(
                    "experiment %s: its metric %s has the value %s, not a number; left out",
                    id_,
                    _short(key),
                    _short(value),
                )


def add_params(by_id: Mapping[str, Experiment], rows: Sequence[Any]) -> None:
    """Rows of (experiment_id, key, JSON text) into each record's ``params``.

    A value another writer left that is not JSON is left out, with a warning.
    """
    json = _json
    try:
        for id_, key, value in rows:
            by_id[id_].params[key] = json(value)
    except _UNREADABLE:
        for id_, key, value in rows:
            try:
                by_id[id_].params[key] = json(value)
            except _UNREADABLE as exc:
                by_id[id_].params.pop(key, None)
                logger.warning(
                    "experiment %s: its param %s JSON cannot be read (%s); left out",
                    id_,
                    _short(key),
                    "nested too deep" if isinstance(exc, RecursionError | _TooDeep) else exc,
                )
