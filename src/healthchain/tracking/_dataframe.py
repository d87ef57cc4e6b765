"""Experiments as a pandas ``DataFrame`` for notebooks (the optional ``pandas`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import ExtraNotInstalledError
from ._records import Experiment

if TYPE_CHECKING:
    import pandas

__all__ = ["COLUMNS", "experiments_to_dataframe"]

COLUMNS = (
    "id",
    "name",
    "project",
    "status",
    "start_time",
    "end_time",
    "duration",
    "tags",
    "metrics",
    "params",
    "pipeline_config",
    "components",
    "error",
    "host",
    "pid",
    "heartbeat_at",
)
"""The fixed columns, in order; one column per metric, param and tag key follows them."""


def experiments_to_dataframe(experiments: Sequence[Experiment]) -> pandas.DataFrame:
    """One row per experiment, in the given order (newest first from ``list_experiments``).

    Times are ``datetime64[ns, UTC]``, ``duration`` is ``timedelta64`` (NaT while
    running), ``status`` is the status name, ``components`` a list of dicts in pipeline
    order. Then, as ``mlflow.search_runs`` has them, one ``metrics.<key>`` column per
    metric (float64: NaN where the run lacks it, or where its value is NaN), one
    ``params.<key>`` and one ``tags.<key>`` column per key (None where unset), each set
    sorted by key.
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ExtraNotInstalledError(
            "to_dataframe needs pandas, which is not installed; "
            "run: pip install 'healthchain[pandas]'"
        ) from exc
    data: dict[str, list[Any]] = {column: [] for column in COLUMNS}
    for e in experiments:
        row = (
            e.id,
            e.name,
            e.project,
            e.status.value,
            e.start_time,
            e.end_time,
            e.duration,
            e.tags,
            e.metrics,
            e.params,
            e.pipeline_config,
            [c._asdict() for c in e.components],
            e.error,
            e.host,
            e.pid,
            e.heartbeat_at,
        )
        for column, value in zip(COLUMNS, row, strict=True):
            data[column].append(value)
    columns = {column: pd.Series(values, dtype=object) for column, values in data.items()}
    for group, dtype in (("metrics", "float64"), ("params", object), ("tags", object)):
        dicts: list[dict[str, Any]] = data[group]
        for key in sorted({key for d in dicts for key in d}):
            values = [d.get(key) for d in dicts]
            columns[f"{group}.{key}"] = pd.Series(values, dtype=dtype)
    frame = pd.DataFrame(columns)
    for column in ("start_time", "end_time", "heartbeat_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration"] = pd.to_timedelta(frame["duration"])
    frame["pid"] = frame["pid"].astype("Int64")
    for column in ("id", "name", "project", "status"):
        frame[column] = frame[column].astype(str)
    return frame
