"""The ``healthchain`` Typer application: ``experiments …``, ``db upgrade``, ``ui``.

Every command opens the storage through the synchronous :class:`ExperimentTracker`
facade, so the terminal sees exactly what scripts see. Errors the user can fix (an unknown
id, a bad filter, an unreachable database) are one line on stderr and a non-zero exit,
handled in one place: :class:`_Group.main`. Usage errors are Click's own report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import healthchain
from healthchain._formatting import validation_text
from healthchain._version import UNKNOWN
from healthchain.tracking import ExperimentNotFoundError, TrackerError

from ._db import db_app
from ._exceptions import CommandError
from ._experiments import experiments_app
from ._serve import ui

__all__ = ["app", "main"]


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _report(message: str) -> int:
    typer.echo(f"error: {_one_line(message)}", err=True)
    return 1


class _Group(TyperGroup):
    """The root group: turns every error of the project's own into one line on stderr.

    Click handles its own exceptions (usage errors, aborts) inside ``super().main``.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        except ExperimentNotFoundError as exc:
            given = exc.experiment_id
            which = f"with id {given!r}" if len(given) >= 36 else f"whose id starts with {given!r}"
            code = _report(
                f"no experiment {which}; "
                "'healthchain experiments list' shows the ids this storage holds"
            )
        except (TrackerError, CommandError) as exc:
            code = _report(str(exc))
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        # Typer checks option values with pydantic, whose messages read "Value error, …"
        # or "Input should …" without the value: reword them before Click reports them.
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            from pydantic import ValidationError  # loaded already if Typer raised one

            cause = exc.__cause__
            if isinstance(cause, ValidationError) and cause.errors():
                exc.message = validation_text(exc.message, cause.errors()[0].get("input"))
            raise


app = typer.Typer(
    cls=_Group,
    name="healthchain",
    help="Look at recorded experiments in the terminal or in a browser.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain usage reports: one format, greppable, not wrapped to a panel's width.
    rich_markup_mode=None,
)


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    version = healthchain.__version__
    if version == UNKNOWN:
        raise CommandError(
            "healthchain's version is unknown: it runs from a source tree that was never "
            "installed; install it with 'pip install -e .' to record one"
        )
    typer.echo(f"healthchain {version}")
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Look at recorded experiments in the terminal or in a browser."""


app.add_typer(experiments_app, name="experiments")
app.add_typer(db_app, name="db")
app.command("ui")(ui)


def main() -> None:
    """Entry point of the ``healthchain`` console script."""
    app(prog_name="healthchain")
