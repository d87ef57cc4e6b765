"""What several commands share: the storage and filter options, and opening the storage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from healthchain._filters import build_filters
from healthchain.tracking import ExperimentStatus, ExperimentTracker, mask_uri

from ._exceptions import DatabaseMissingError

__all__ = [
    "STORAGE_ENV",
    "MetricOption",
    "ParamOption",
    "NameOption",
    "ProjectOption",
    "ShowFormat",
    "ShowFormatOption",
    "StatusOption",
    "StorageOption",
    "TagOption",
    "filters",
    "open_tracker",
    "repeatable",
]

STORAGE_ENV = "HEALTHCHAIN_STORAGE_URI"


class ShowFormat(StrEnum):
    """Output of commands printing one document."""

    table = "table"
    json = "json"


ShowFormatOption = Annotated[ShowFormat, typer.Option("--format", help="table or json.")]
StorageOption = Annotated[
    str,
    typer.Option(
        "--storage-uri",
        envvar=STORAGE_ENV,
        show_envvar=True,
        help="Database URL, e.g. sqlite:///experiments.db or postgresql://user@host/db.",
    ),
]
ProjectOption = Annotated[str | None, typer.Option("--project", help="Only this project.")]
NameOption = Annotated[str | None, typer.Option("--name", help="Only experiments of this name.")]
StatusOption = Annotated[
    list[ExperimentStatus] | None,
    typer.Option("--status", case_sensitive=False, help="Only this status (repeatable)."),
]


def repeatable(flag: str, metavar: str, help: str) -> Any:
    """A text option that may be given several times (a list, None if never given)."""
    return typer.Option(flag, metavar=metavar, help=help)


TagOption = Annotated[
    list[str] | None,
    repeatable(
        "--tag",
        "KEY=VALUE",
        "Only experiments with this tag (repeatable; KEY:=JSON for a number or bool).",
    ),
]
MetricOption = Annotated[
    list[str] | None,
    repeatable(
        "--metric",
        "KEY<OP>NUMBER",
        "Only experiments whose latest KEY compares so, e.g. 'acc>0.5' (operators: "
        "= != < <= > >=; repeatable, one per key).",
    ),
]
ParamOption = Annotated[
    list[str] | None,
    repeatable(
        "--param",
        "KEY=VALUE",
        "Only experiments with this param, e.g. model=gpt-4o or epochs=3 (a VALUE that "
        "reads as JSON is JSON; repeatable).",
    ),
]


def filters(
    project: str | None,
    name: str | None,
    status: list[ExperimentStatus] | None,
    tag: list[str] | None,
    metric: list[str] | None = None,
    param: list[str] | None = None,
) -> dict[str, Any]:
    """``list_experiments`` filters from the filter options."""
    return build_filters(
        project=project,
        name=name,
        statuses=[s.value for s in status or ()],
        tags=tag or (),
        metrics=metric or (),
        params=param or (),
    )


def _sqlite_path(storage_uri: str) -> Path | None:
    try:
        url = make_url(storage_uri)
    except (ArgumentError, ValueError):
        return None  # the tracker rejects it with a clearer message
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@contextmanager
def open_tracker(storage_uri: str, *, write: bool = False) -> Iterator[ExperimentTracker]:
    """Open the storage, for reading only unless ``write``; a missing SQLite file is an error.

    Reading needs read access alone: a database in a read-only folder can be listed.
    """
    path = _sqlite_path(storage_uri)
    if path is not None and not path.exists():
        raise DatabaseMissingError(
            f"no experiments database at {str(path)!r} ({mask_uri(storage_uri)}); run an "
            f"experiment first, or point --storage-uri (or {STORAGE_ENV}) at an existing one"
        )
    with ExperimentTracker(storage_uri, read_only=not write) as tracker:
        yield tracker
