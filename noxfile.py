"""Sessions: ``tests`` (the suite), ``lint`` (format, lint, types), ``bench`` (benchmarks)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage of the tracker core."""
    session.install("-e", ".[dev,postgres]")
    session.run(
        "pytest",
        "--cov=healthchain",
        "--cov-report=term",
        "--durations=25",  # the slowest tests, to keep the CI run short
        *session.posargs,
        env={"PYTHONDEVMODE": "1", **os.environ},
    )
    session.run("coverage", "report", "--include=*/healthchain/tracking/*", "--fail-under=90")


@nox.session(python=PYTHON)
def stress(session: nox.Session) -> None:
    """The reliability tests (marked ``stress``), ten times longer: writers, crashes, outages."""
    session.install("-e", ".[dev,postgres]")
    session.run(
        "pytest",
        "-m",
        "stress",
        *session.posargs,
        env={"HEALTHCHAIN_STRESS_SCALE": "10", **os.environ},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Formatting, lint and strict typing must all be clean."""
    session.install("-e", ".[dev,postgres]")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks (tracker, dashboard list and compare pages, sandbox, metrics); writes
    bench/RESULTS*.md."""
    # psycopg2 is MLflow's PostgreSQL driver: the bench's peer only, not a package extra.
    session.install("-e", ".[postgres]", "mlflow-skinny>=2.14", "psutil>=5.9", "psycopg2-binary")
    # HEALTHCHAIN_BENCH_POSTGRES_URL (a server; hcbench_* databases are made and dropped
    # there) adds the PostgreSQL runs of run.py and bench_metrics.py; without it they are
    # skipped with a message.
    pg = "HEALTHCHAIN_BENCH_POSTGRES_URL"
    env = {pg: os.environ[pg]} if os.environ.get(pg) else {}
    session.run("python", "bench/run.py", *session.posargs, env=env)
    # "nox -s bench -- --quick" smoke-runs all five (each writes nothing then).
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "bench/bench_ui.py", *quick)
    session.run("python", "bench/bench_compare.py", *quick)
    session.run("python", "bench/bench_sandbox.py", *quick)
    session.run("python", "bench/bench_metrics.py", *quick, env=env)
