"""The ``healthchain`` command line: experiments in the terminal, and the dashboard server.

``main`` is the console script's entry point; ``app`` the Typer application (use it
with ``typer.testing.CliRunner``).
"""

from __future__ import annotations

from ._app import app, main
from ._exceptions import CommandError, DatabaseMissingError

__all__ = ["CommandError", "DatabaseMissingError", "app", "main"]
