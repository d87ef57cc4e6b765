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
    "pipeline_config",
    "components",
    "error",
    "host",
    "pid",
    "heartbeat_at",
)
"""The fixed columns, in order; one ``tags.<key>`` column per tag key follows them."""


def experiments_to_dataframe(experiments: Sequence[Experiment]) -> pandas.DataFrame:
    """One row per experiment, in the given order (newest first from ``list_experiments``).

    Times are ``datetime64[ns, UTC]``, ``duration`` is ``timedelta64`` (NaT while
    running), ``status`` is the status name, ``components`` a list of dicts in pipeline
    order; each tag key also gets its own ``tags.<key>`` column (missing where unset).
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ExtraNotInstalledError(
            "to_dataframe needs pandas, which is not installed; "
            "run: pip install 'healthchain[pandas]'"
        ) from exc
    tag_keys = sorted({key for e in experiments for key in e.tags})
    data: dict[str, list[Any]] = {column: [] for column in COLUMNS}
    tag_data: dict[str, list[Any]] = {key: [] for key in tag_keys}
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
            e.pipeline_config,
            [c._asdict() for c in e.components],
            e.error,
            e.host,
            e.pid,
            e.heartbeat_at,
        )
        for column, value in zip(COLUMNS, row, strict=True):
            data[column].append(value)
        for key in tag_keys:
            tag_data[key].append(e.tags.get(key))
    frame = pd.DataFrame(
        {
            **{column: pd.Series(values, dtype=object) for column, values in data.items()},
            **{f"tags.{key}": pd.Series(values, dtype=object) for key, values in tag_data.items()},
        }
    )
    for column in ("start_time", "end_time", "heartbeat_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["duration"] = pd.to_timedelta(frame["duration"])
    frame["pid"] = frame["pid"].astype("Int64")
    for column in ("id", "name", "project", "status"):
        frame[column] = frame[column].astype(str)
    return frame
