"""Running the ``healthchain`` command line in-process, and what its errors look like."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from healthchain.cli import app

__all__ = ["assert_one_line_error", "run"]

runner = CliRunner()
# No terminal size unless a test gives one: the runner's own environment must not choose
# the width (pytest-xdist's workers export COLUMNS=80 and LINES=24).
_NO_TERMINAL: dict[str, str | None] = {"COLUMNS": None, "LINES": None}


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env={**_NO_TERMINAL, **(env or {})})


def assert_one_line_error(result: Result, code: int, *needles: str) -> None:
    """healthchain's own errors are one line; usage errors (exit 2) are Click's report."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    if code == 2:
        assert lines[0].startswith("Usage: healthchain "), result.stderr
        assert "--help' for help." in lines[1] and lines[-1].startswith("Error: "), result.stderr
    else:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[-1]
