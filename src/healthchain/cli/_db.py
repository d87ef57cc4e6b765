"""``healthchain db``: manage the experiments database."""

from __future__ import annotations

import anyio
import typer

from healthchain.tracking import DEFAULT_STORAGE_URI, mask_uri, upgrade_database

from ._options import ShowFormat, ShowFormatOption, StorageOption
from ._output import echo_json

__all__ = ["db_app"]

db_app = typer.Typer(help="Manage the experiments database.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    output_format: ShowFormatOption = ShowFormat.table,
) -> None:
    """Create the schema, or migrate it to the newest revision."""
    before, after = anyio.run(upgrade_database, storage_uri)
    shown = mask_uri(storage_uri)
    if output_format is ShowFormat.json:
        echo_json({"storage_uri": shown, "before": before, "after": after})
    elif before is None:
        typer.echo(f"created the schema (revision {after}) in {shown}")
    elif before == after:
        typer.echo(f"{shown} is already at the newest revision ({after})")
    else:
        typer.echo(f"upgraded {shown} from revision {before} to {after}")
