"""The benchmark scripts: every one documented, and their results saying where and when."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_bench_readme_lists_every_script() -> None:
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([\w.]+\.py)`", readme))
    scripts = {path.name for path in BENCH.glob("*.py")}
    assert scripts <= listed, f"bench/README.md does not list {sorted(scripts - listed)}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["bench_sandbox.py", "--quick", "--num", "50"],
        # MLflow is not a test dependency: our side and the sqlite3 reference only.
        ["bench_metrics.py", "--quick", "--no-mlflow"],
    ],
    ids=["sandbox", "metrics"],
)
def test_a_generated_results_file_carries_the_machine_and_the_date(
    tmp_path: Path, command: list[str]
) -> None:
    out = tmp_path / "results.md"
    script, *options = command
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *options, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    machine = out.read_text(encoding="utf-8").split("## Machine", 1)[1]
    assert re.search(r"Measured \d{4}-\d\d-\d\d \d\d:\d\d UTC → \d{4}-\d\d-\d\d", machine)
    assert "logical CPUs" in machine and "Python 3." in machine and "healthchain " in machine


@pytest.mark.slow
def test_the_compare_bench_measures_a_downsampled_page(tmp_path: Path) -> None:
    out = tmp_path / "compare.md"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_compare.py"),
            "--quick",
            *("--runs", "3", "--points", "2500", "--keys", "2", "--repeat", "1"),
            *("--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    row = re.search(
        r"^\| 3 \| 2,500 \| 6 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", out.read_text("utf-8"), re.M
    )
    assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0
    assert "## Machine" in out.read_text("utf-8")
