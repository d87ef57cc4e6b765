"""``healthchain experiments``: list, show, compare, export, reap and delete."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from healthchain._files import whole_file
from healthchain._formatting import (
    SHORT_ID_LENGTH,
    experiment_record,
    format_duration,
    format_time,
    plural,
)
from healthchain.tracking import DEFAULT_STORAGE_URI, mask_uri

from ._compare import compare
from ._exceptions import CommandError
from ._list_table import (
    DEFAULT_METRIC_COLUMNS,
    FIT_ORDER,
    NAME_WIDTH,
    ValueColumn,
    common_metric_columns,
    list_table,
    order_words,
    parse_columns,
)
from ._measures import measures_tables
from ._options import (
    MetricOption,
    NameOption,
    ParamOption,
    ProjectOption,
    ShowFormat,
    ShowFormatOption,
    StatusOption,
    StorageOption,
    TagOption,
    filters,
    open_tracker,
    repeatable,
)
from ._output import (
    console,
    echo_json,
    print_out,
    requests_doc,
    status_text,
    tags_text,
    write_csv,
    write_jsonl,
)

__all__ = ["experiments_app"]

experiments_app = typer.Typer(
    help="List, show, compare, export, reap and delete experiments.", no_args_is_help=True
)


_ID_HELP = "The experiment's id, or a unique prefix of it (4 characters or more)."


class ListFormat(StrEnum):
    """Output of ``experiments list``."""

    table = "table"
    json = "json"
    csv = "csv"


class ExportFormat(StrEnum):
    """File format of ``experiments export``."""

    csv = "csv"
    jsonl = "jsonl"


_LIST_HELP = f"""List experiments, newest first unless --sort says otherwise.

The table shows each id by its shortest unique prefix of at least {SHORT_ID_LENGTH}
characters; JSON and CSV keep whole ids and every metric and param. Besides the columns
--columns picks (and the metrics --sort orders by), it shows the latest values of the
{DEFAULT_METRIC_COLUMNS} metrics most of the listed experiments have. It fits the
terminal (COLUMNS if set): names up to {NAME_WIDTH} characters and picked columns always
show whole, and while the table is too wide {"; then ".join(FIT_ORDER)}.
"""


@experiments_app.command("list", help=_LIST_HELP)
def list_experiments(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    project: ProjectOption = None,
    name: NameOption = None,
    status: StatusOption = None,
    tag: TagOption = None,
    metric: MetricOption = None,
    param: ParamOption = None,
    sort: Annotated[
        list[str] | None,
        repeatable(
            "--sort",
            "KEY",
            "Order by start_time, name, duration or metrics.KEY; a leading '-' for "
            "descending, e.g. -metrics.acc (repeatable: ties go to the next).",
        ),
    ] = None,
    columns: Annotated[
        list[str] | None,
        repeatable(
            "--columns",
            "KEY,...",
            "Metric columns to show (KEY or metrics.KEY) and param columns (params.KEY); "
            "comma-separated or repeated.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most N experiments (0: all).")
    ] = 50,
    output_format: Annotated[
        ListFormat, typer.Option("--format", help="table, json or csv.")
    ] = ListFormat.table,
) -> None:
    wanted = filters(project, name, status, tag, metric, param)
    picked = parse_columns(columns or ())
    # the metrics the list is filtered and ordered by show, whatever --columns says
    fields = [key.removeprefix("-") for key in sort or ()]
    ordered = [f.removeprefix("metrics.") for f in fields if f.startswith("metrics.")]
    for key in [*wanted.get("metrics", {}), *ordered]:
        if ValueColumn("metrics", key) not in picked:
            picked.append(ValueColumn("metrics", key))
    table = output_format is ListFormat.table
    with open_tracker(storage_uri) as tracker:
        found = tracker.list_experiments(wanted, limit=limit or None, order_by=sort or None)
        short_ids = tracker.abbreviate_ids([e.id for e in found], SHORT_ID_LENGTH) if table else {}
    if output_format is ListFormat.json:
        echo_json([experiment_record(e) for e in found])
    elif output_format is ListFormat.csv:
        write_csv(sys.stdout, found)
    elif not found:
        typer.echo(
            "no experiments match these filters"
            if wanted
            else f"no experiments recorded yet in {mask_uri(storage_uri)}"
        )
    else:
        out = console()
        order = order_words(sort) if sort else "newest first"
        title = f"{plural(len(found), 'experiment')}, {order}"
        table_ = list_table(out, title, found, short_ids, picked, common_metric_columns(found))
        print_out(out, table_)
    if limit and len(found) == limit:
        first = f"the first {limit} in this order" if sort else f"the newest {limit}"
        typer.echo(f"showing {first}; pass --limit 0 to list all", err=True)


@experiments_app.command("show")
def show(
    experiment_id: Annotated[str, typer.Argument(metavar="ID", help=_ID_HELP)],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: ShowFormatOption = ShowFormat.table,
) -> None:
    """Show one experiment: its fields, components in order, params, latest metrics, the
    request summary, each score's mean over the requests, and where its files are."""
    with open_tracker(storage_uri) as tracker:
        experiment_id = tracker.resolve_id(experiment_id)
        experiment = tracker.get_experiment(experiment_id)
        stats = tracker.request_stats(experiment_id)
        scores = [r.scores for r in tracker.list_requests(experiment_id) if r.scores]
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
    if experiment.files_dir is not None:
        rows.append(("saved files", Text(experiment.files_dir)))
    for label, value in rows:
        facts.add_row(label, value)
    print_out(out, facts)

    components = Table(title="components", title_justify="left")
    for column in ("#", "name", "type", "stage"):
        components.add_column(column, justify="right" if column == "#" else "left")
    for c in experiment.components:
        components.add_row(str(c.position), Text(c.name), Text(c.type or ""), Text(c.stage or ""))
    print_out(out, components if experiment.components else "components: none recorded")

    p50 = "-" if stats.p50_ms is None else f"{stats.p50_ms:.1f} ms"
    p95 = "-" if stats.p95_ms is None else f"{stats.p95_ms:.1f} ms"
    print_out(
        out, f"requests: {stats.count}  failures: {stats.failures}  latency p50: {p50}  p95: {p95}"
    )
    print_out(out, *measures_tables(experiment, scores))


experiments_app.command("compare")(compare)


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
    metric: MetricOption = None,
    param: ParamOption = None,
    output_format: Annotated[
        ExportFormat, typer.Option("--format", help="csv or jsonl.")
    ] = ExportFormat.csv,
) -> None:
    """Write every matching experiment to a CSV or JSON Lines file, newest first."""
    wanted = filters(project, name, status, tag, metric, param)
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
    typer.echo(f"exported {plural(len(found), 'experiment')} to {target}", err=True)


@experiments_app.command("reap")
def reap(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: ShowFormatOption = ShowFormat.table,
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
        typer.echo(f"marked {plural(len(reaped), 'stale experiment')} FAILED:")
        for experiment_id in reaped:
            typer.echo(experiment_id)


@experiments_app.command("delete")
def delete(
    experiment_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="ID...", help="Ids of the experiments to delete, or unique prefixes of them."
        ),
    ],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output_format: ShowFormatOption = ShowFormat.table,
) -> None:
    """Delete experiments with their tags, components and requests (asks first)."""
    with open_tracker(storage_uri, write=True) as tracker:
        # Every id must name one experiment before anything is deleted: a typo deletes
        # nothing, and neither does a prefix several ids share.
        ids = list(dict.fromkeys(tracker.resolve_id(i) for i in experiment_ids))
        names = [tracker.get_experiment(i).name for i in ids]
        if not yes:
            listing = ", ".join(f"{n} ({i})" for n, i in zip(names, ids, strict=True))
            if not typer.confirm(f"Delete {plural(len(ids), 'experiment')}: {listing}?", err=True):
                raise CommandError("aborted")
        deleted = tracker.delete_experiments(ids)
    if output_format is ShowFormat.json:
        echo_json({"deleted": deleted, "ids": ids})
    else:
        typer.echo(f"deleted {plural(deleted, 'experiment')}")
