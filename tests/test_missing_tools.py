"""A test whose tool or server is missing: skipped with its reason here, failed in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent

NEEDS_A_FROBNICATOR = """
from helpers import unavailable

def test_needs_a_frobnicator():
    unavailable("no frobnicator here: apt-get install frobnicator")
"""


def _run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs.py").write_text(NEEDS_A_FROBNICATOR)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(HELPERS), env.get("PYTHONPATH", "")])
    # The inner test needs pytest alone: loading every installed plugin (hypothesis,
    # anyio, coverage, langsmith...) took ~10 of the child's 11 s on this machine.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "test_needs.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_a_missing_tool_skips_with_its_reason_on_a_developer_machine(
    tmp_path: Path, ci: str | None
) -> None:
    done = _run_pytest(tmp_path, ci)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "no frobnicator here: apt-get install frobnicator" in done.stdout


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_a_missing_tool_fails_in_ci(tmp_path: Path, ci: str) -> None:
    done = _run_pytest(tmp_path, ci)
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout
    assert "no frobnicator here" in done.stdout and "CI must provide it" in done.stdout
