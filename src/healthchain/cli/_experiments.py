"""``healthchain experiments``: list, show, export, reap and delete."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from healthchain._files import whole_file
from healthchain._formatting import experiment_record, format_duration, format_time
from healthchain.tracking import DEFAULT_STORAGE_URI

from ._exceptions import CommandError
from ._options import (
    NameOption,
    ProjectOption,
    ShowFormat,
    StatusOption,
    StorageOption,
    TagOption,
    filters,
    open_tracker,
)
from ._output import (
    console,
    echo_json,
    requests_doc,
    status_text,
    tags_text,
    write_csv,
    write_jsonl,
)

__all__ = ["experiments_app"]

experiments_app = typer.Typer(
    help="List, show, export, reap and delete experiments.", no_args_is_help=True
)


class ListFormat(StrEnum):
    """Output of ``experiments list``."""

    table = "table"
    json = "json"
    csv = "csv"


class ExportFormat(StrEnum):
    """File format of ``experiments export``."""

    csv = "csv"
    jsonl = "jsonl"


@experiments_app.command("list")
def list_experiments(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    project: ProjectOption = None,
    name: NameOption = None,
    status: StatusOption = None,
    tag: TagOption = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most N experiments (0: all).")
    ] = 50,
    output_format: Annotated[
        ListFormat, typer.Option("--format", help="table, json or csv.")
    ] = ListFormat.table,
) -> None:
    """List experiments, newest first."""
    wanted = filters(project, name, status, tag)
    with open_tracker(storage_uri) as tracker:
        found = tracker.list_experiments(wanted, limit=limit or None)
    if output_format is ListFormat.json:
        echo_json([experiment_record(e) for e in found])
    elif output_format is ListFormat.csv:
        write_csv(sys.stdout, found)
    else:
        table = Table(title=f"{len(found)} experiments, newest first", title_justify="left")
        table.add_column("id", no_wrap=True, min_width=36)
        table.add_column("name", overflow="fold")
        table.add_column("project", overflow="fold")
        table.add_column("status", no_wrap=True)
        table.add_column("start (UTC)", no_wrap=True)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("tags", overflow="fold")
        for e in found:
            table.add_row(
                e.id,
                Text(e.name),
                Text(e.project),
                status_text(e.status),
                format_time(e.start_time),
                format_duration(e.duration) or "running",
                Text(tags_text(e.tags)),
            )
        console().print(table)
    if limit and len(found) == limit:
        typer.echo(f"showing the newest {limit}; pass --limit 0 to list all", err=True)


@experiments_app.command("show")
def show(
    experiment_id: Annotated[str, typer.Argument(metavar="ID", help="The experiment's id.")],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: Annotated[
        ShowFormat, typer.Option("--format", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Show one experiment: its fields, components in order and request summary."""
    with open_tracker(storage_uri) as tracker:
        experiment = tracker.get_experiment(experiment_id)
        stats = tracker.request_stats(experiment_id)
    if output_format is ShowFormat.json:
        echo_json({**experiment_record(experiment), "requests": requests_doc(stats)})
        return
    out = console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column(overflow="fold")
    host = experiment.host or ""
    if experiment.pid is not None:
        host += f" (pid {experiment.pid})"
    rows: list[tuple[str, str | Text]] = [
        ("id", experiment.id),
        ("name", Text(experiment.name)),
        ("project", Text(experiment.project)),
        ("status", status_text(experiment.status)),
        ("start (UTC)", format_time(experiment.start_time)),
        ("end (UTC)", format_time(experiment.end_time)),
        ("duration", format_duration(experiment.duration) or "running"),
        ("host", Text(host)),
        ("tags", Text(tags_text(experiment.tags))),
    ]
    if experiment.error:
        rows.append(("error", Text(experiment.error, style="red")))
    if experiment.pipeline_config is not None:
        rows.append(("pipeline config", Text(json.dumps(experiment.pipeline_config))))
    for label, value in rows:
        facts.add_row(label, value)
    out.print(facts)

    components = Table(title="components", title_justify="left")
    for column in ("#", "name", "type", "stage"):
        components.add_column(column, justify="right" if column == "#" else "left")
    for c in experiment.components:
        components.add_row(str(c.position), Text(c.name), Text(c.type or ""), Text(c.stage or ""))
    if experiment.components:
        out.print(components)
    else:
        out.print("components: none recorded")

    p50 = "-" if stats.p50_ms is None else f"{stats.p50_ms:.1f} ms"
    p95 = "-" if stats.p95_ms is None else f"{stats.p95_ms:.1f} ms"
    out.print(
        f"requests: {stats.count}  failures: {stats.failures}  latency p50: {p50}  p95: {p95}"
    )


@experiments_app.command("export")
def export(
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="File to write ('-': stdout).")
    ],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    project: ProjectOption = None,
    name: NameOption = None,
    status: StatusOption = None,
    tag: TagOption = None,
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv or jsonl.")
    ] = ExportFormat.csv,
) -> None:
    """Write every matching experiment to a CSV or JSON Lines file, newest first."""
    wanted = filters(project, name, status, tag)
    with open_tracker(storage_uri) as tracker:
        found = tracker.list_experiments(wanted)
    write = write_csv if output_format is ExportFormat.csv else write_jsonl
    if output == "-":
        write(sys.stdout, found)
    else:
        try:
            with whole_file(output, newline="") as out:  # a full disk leaves no half file
                write(out, found)
        except OSError as exc:
            raise CommandError(f"cannot write {output!r}: {exc.strerror or exc}") from exc
    target = "stdout" if output == "-" else repr(output)
    typer.echo(f"exported {len(found)} experiments to {target}", err=True)


@experiments_app.command("reap")
def reap(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: Annotated[
        ShowFormat, typer.Option("--format", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Mark RUNNING experiments whose process stopped sending heartbeats as FAILED."""
    with open_tracker(storage_uri, write=True) as tracker:
        reaped = tracker.reap_stale()
    if output_format is ShowFormat.json:
        echo_json({"reaped": reaped})
        return
    if not reaped:
        typer.echo("no stale experiments")
    else:
        typer.echo(f"marked {len(reaped)} stale experiments FAILED:")
        for experiment_id in reaped:
            typer.echo(experiment_id)


@experiments_app.command("delete")
def delete(
    experiment_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Ids of the experiments to delete.")
    ],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output_format: Annotated[
        ShowFormat, typer.Option("--format", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Delete experiments with their tags, components and requests (asks first)."""
    ids = list(dict.fromkeys(experiment_ids))
    with open_tracker(storage_uri, write=True) as tracker:
        # Every id must exist before anything is deleted: a typo deletes nothing.
        names = [tracker.get_experiment(i).name for i in ids]
        if not yes:
            listing = ", ".join(f"{n} ({i})" for n, i in zip(names, ids, strict=True))
            if not typer.confirm(f"Delete {len(ids)} experiment(s): {listing}?", err=True):
                raise CommandError("aborted")
        deleted = tracker.delete_experiments(ids)
    if output_format is ShowFormat.json:
        echo_json({"deleted": deleted, "ids": ids})
    else:
        typer.echo(f"deleted {deleted} experiment(s)")
