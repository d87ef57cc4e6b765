"""The ``healthchain`` Typer application: ``experiments …``, ``db upgrade``, ``ui``.

Every command opens the storage through the synchronous :class:`ExperimentTracker`
facade, so the terminal sees exactly what scripts see. Errors the user can fix (an unknown
id, a bad filter, an unreachable database) are one line on stderr and a non-zero exit,
handled in one place: :class:`_Group.main`.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from healthchain._files import whole_file
from healthchain.tracking import (
    DEFAULT_STORAGE_URI,
    Experiment,
    ExperimentNotFoundError,
    ExperimentStatus,
    ExperimentTracker,
    RequestStats,
    TrackerError,
    mask_uri,
    upgrade_database,
)
from healthchain.ui import (
    build_filters,
    create_app,
    experiment_record,
    format_duration,
    format_tag,
    format_time,
    host_pattern,
)

from ._exceptions import CommandError, DatabaseMissingError

__all__ = ["STORAGE_ENV", "app", "main"]

STORAGE_ENV = "HEALTHCHAIN_STORAGE_URI"


def _one_line(message: str) -> str:
    return " ".join(message.split())


class _Group(TyperGroup):
    """The root group: turns every error a user can fix into one line on stderr."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except UsageError as exc:
            hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx else ""
            code = _report(f"{exc.format_message().rstrip('.')}{hint}", exc.exit_code)
        except ClickException as exc:
            code = _report(exc.format_message(), exc.exit_code)
        except typer.Abort:
            code = _report("aborted", 1)
        except ExperimentNotFoundError as exc:
            code = _report(
                f"no experiment with id {exc.experiment_id!r}; "
                "'healthchain experiments list' shows the ids this storage holds",
                1,
            )
        except (TrackerError, CommandError) as exc:
            code = _report(str(exc), 1)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _report(message: str, code: int) -> int:
    typer.echo(f"error: {_one_line(message)}", err=True)
    return code


app = typer.Typer(
    cls=_Group,
    name="healthchain",
    help="Look at recorded experiments in the terminal or in a browser.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
experiments_app = typer.Typer(
    help="List, show, export, reap and delete experiments.", no_args_is_help=True
)
db_app = typer.Typer(help="Manage the experiments database.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")
app.add_typer(db_app, name="db")


def main() -> None:
    """Entry point of the ``healthchain`` console script."""
    typer.main.get_command(app).main(prog_name="healthchain")


# --- options shared by commands ----------------------------------------------------------


class ListFormat(StrEnum):
    """Output of ``experiments list``."""

    table = "table"
    json = "json"
    csv = "csv"


class ShowFormat(StrEnum):
    """Output of commands printing one document."""

    table = "table"
    json = "json"


class ExportFormat(StrEnum):
    """File format of ``experiments export``."""

    csv = "csv"
    jsonl = "jsonl"


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
TagOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        metavar="KEY=VALUE",
        help="Only experiments with this tag (repeatable; KEY:=JSON for a number or bool).",
    ),
]


def _filters(
    project: str | None,
    name: str | None,
    status: list[ExperimentStatus] | None,
    tag: list[str] | None,
) -> dict[str, Any]:
    return build_filters(
        project=project, name=name, statuses=[s.value for s in status or ()], tags=tag or ()
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
def _tracker(storage_uri: str, *, write: bool = False) -> Iterator[ExperimentTracker]:
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


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        # Piped or captured: no terminal width to respect, and ids must stay whole.
        console = Console(highlight=False, width=200)
    return console


def _echo_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _tags_text(tags: dict[str, Any]) -> str:
    return ", ".join(format_tag(k, v) for k, v in sorted(tags.items()))


_STATUS_STYLE = {
    ExperimentStatus.RUNNING: "bold blue",
    ExperimentStatus.COMPLETED: "bold green",
    ExperimentStatus.FAILED: "bold red",
    ExperimentStatus.INTERRUPTED: "bold yellow",
}


def _status(status: ExperimentStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE[status])


_CSV_FIELDS = (
    "id",
    "name",
    "project",
    "status",
    "start_time",
    "end_time",
    "duration_s",
    "tags",
    "pipeline_config",
    "components",
    "error",
    "host",
    "pid",
    "heartbeat_at",
)
_JSON_FIELDS = {"tags", "pipeline_config", "components"}


def _write_csv(out: IO[str], experiments: Sequence[Experiment]) -> None:
    writer = csv.writer(out)
    writer.writerow(_CSV_FIELDS)
    for experiment in experiments:
        record = experiment_record(experiment)
        writer.writerow(
            json.dumps(record[f], ensure_ascii=False)
            if f in _JSON_FIELDS and record[f] is not None
            else ("" if record[f] is None else record[f])
            for f in _CSV_FIELDS
        )


def _write_jsonl(out: IO[str], experiments: Sequence[Experiment]) -> None:
    for experiment in experiments:
        out.write(json.dumps(experiment_record(experiment), ensure_ascii=False) + "\n")


# --- experiments ------------------------------------------------------------------------


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
    filters = _filters(project, name, status, tag)
    with _tracker(storage_uri) as tracker:
        found = tracker.list_experiments(filters, limit=limit or None)
    if output_format is ListFormat.json:
        _echo_json([experiment_record(e) for e in found])
    elif output_format is ListFormat.csv:
        _write_csv(sys.stdout, found)
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
                _status(e.status),
                format_time(e.start_time),
                format_duration(e.duration) or "running",
                Text(_tags_text(e.tags)),
            )
        _console().print(table)
    if limit and len(found) == limit:
        typer.echo(f"showing the newest {limit}; pass --limit 0 to list all", err=True)


def _requests_doc(stats: RequestStats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "failures": stats.failures,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
    }


@experiments_app.command("show")
def show(
    experiment_id: Annotated[str, typer.Argument(metavar="ID", help="The experiment's id.")],
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: Annotated[
        ShowFormat, typer.Option("--format", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Show one experiment: its fields, components in order and request summary."""
    with _tracker(storage_uri) as tracker:
        experiment = tracker.get_experiment(experiment_id)
        stats = tracker.request_stats(experiment_id)
    if output_format is ShowFormat.json:
        _echo_json({**experiment_record(experiment), "requests": _requests_doc(stats)})
        return
    console = _console()
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
        ("status", _status(experiment.status)),
        ("start (UTC)", format_time(experiment.start_time)),
        ("end (UTC)", format_time(experiment.end_time)),
        ("duration", format_duration(experiment.duration) or "running"),
        ("host", Text(host)),
        ("tags", Text(_tags_text(experiment.tags))),
    ]
    if experiment.error:
        rows.append(("error", Text(experiment.error, style="red")))
    if experiment.pipeline_config is not None:
        rows.append(("pipeline config", Text(json.dumps(experiment.pipeline_config))))
    for label, value in rows:
        facts.add_row(label, value)
    console.print(facts)

    components = Table(title="components", title_justify="left")
    for column in ("#", "name", "type", "stage"):
        components.add_column(column, justify="right" if column == "#" else "left")
    for c in experiment.components:
        components.add_row(str(c.position), Text(c.name), Text(c.type or ""), Text(c.stage or ""))
    if experiment.components:
        console.print(components)
    else:
        console.print("components: none recorded")

    p50 = "-" if stats.p50_ms is None else f"{stats.p50_ms:.1f} ms"
    p95 = "-" if stats.p95_ms is None else f"{stats.p95_ms:.1f} ms"
    console.print(
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
    filters = _filters(project, name, status, tag)
    with _tracker(storage_uri) as tracker:
        found = tracker.list_experiments(filters)
    write = _write_csv if output_format is ExportFormat.csv else _write_jsonl
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
    with _tracker(storage_uri, write=True) as tracker:
        reaped = tracker.reap_stale()
    if output_format is ShowFormat.json:
        _echo_json({"reaped": reaped})
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
    with _tracker(storage_uri, write=True) as tracker:
        # Every id must exist before anything is deleted: a typo deletes nothing.
        names = [tracker.get_experiment(i).name for i in ids]
        if not yes:
            listing = ", ".join(f"{n} ({i})" for n, i in zip(names, ids, strict=True))
            typer.confirm(f"Delete {len(ids)} experiment(s): {listing}?", abort=True, err=True)
        deleted = tracker.delete_experiments(ids)
    if output_format is ShowFormat.json:
        _echo_json({"deleted": deleted, "ids": ids})
    else:
        typer.echo(f"deleted {deleted} experiment(s)")


# --- db ---------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: Annotated[
        ShowFormat, typer.Option("--format", help="table or json.")
    ] = ShowFormat.table,
) -> None:
    """Create the schema, or migrate it to the newest revision."""
    before, after = anyio.run(upgrade_database, storage_uri)
    shown = mask_uri(storage_uri)
    if output_format is ShowFormat.json:
        _echo_json({"storage_uri": shown, "before": before, "after": after})
    elif before is None:
        typer.echo(f"created the schema (revision {after}) in {shown}")
    elif before == after:
        typer.echo(f"{shown} is already at the newest revision ({after})")
    else:
        typer.echo(f"upgraded {shown} from revision {before} to {after}")


# --- ui ---------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from exc
    return sock


def _fail(message: str) -> NoReturn:
    raise CommandError(message)


def _host_names(names: list[str] | None) -> list[str]:
    try:
        return [host_pattern(name) for name in names or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


@app.command("ui")
def ui(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 8765,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            callback=_host_names,
            help="Also answer requests addressed to NAME, a host name or address clients "
            "use (repeatable; *.domain for its subdomains). localhost, loopback addresses "
            "and the --host address are always answered.",
        ),
    ] = None,
) -> None:
    """Serve the read-only experiments dashboard until Ctrl-C.

    Requests addressed to any other name are refused (400), whatever --host is, so a
    page elsewhere cannot read the dashboard through a DNS name rebound to it.
    """
    import uvicorn

    with _tracker(storage_uri) as tracker:
        tracker.list_experiments(limit=1)  # fail here, in one line, if it cannot be read
    try:
        names = [host_pattern(host), *(allow_host or ())]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--host'") from None
    if _wildcard(host):
        # The machine's own name costs no lookup; its addresses would (DNS, interfaces).
        names.append(socket.gethostname())
    app_ = create_app(storage_uri, allowed_hosts=names)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    if not _is_loopback(host):
        answered = ", ".join(dict.fromkeys(["localhost", "loopback addresses", *names]))
        typer.echo(
            f"warning: serving on {host}: the dashboard has no login, so anyone who can "
            "reach this address can read every experiment. It answers only requests "
            f"addressed to {answered}: add --allow-host NAME for each other name or "
            "address clients use",
            err=True,
        )
    typer.echo(f"healthchain dashboard on http://{shown}:{bound}/ (Ctrl-C to stop)")
    server = uvicorn.Server(
        uvicorn.Config(app_, log_level="warning", access_log=False, lifespan="on")
    )
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        _fail("the dashboard did not start; see the messages above")
