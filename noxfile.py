"""Sessions: ``tests`` (the suite, with coverage), ``lint`` (format, lint, types), ``bench``
(benchmarks), ``docs`` (the documentation site), and the version matrix: ``suite`` (the
whole suite) and ``core`` (the tracker, sandbox and metrics tests) on each supported Python
and SQLAlchemy, e.g. ``nox -s "core(python='3.13', sqlalchemy='2.1')"``. ``nox -t ci`` is
what CI runs (.ci/run): lint, docs, tests, and core on two other combinations."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
# uv makes and fills a session's virtualenv in seconds where pip takes a minute (five
# sessions in CI); plain virtualenv + pip where uv is not installed (``pip install nox``).
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"
# Supported versions: each Python with each SQLAlchemy series.
PYTHONS = ["3.11", "3.12", "3.13"]
SQLALCHEMY = {"2.0": "sqlalchemy[asyncio]>=2.0.30,<2.1", "2.1": "sqlalchemy[asyncio]>=2.1,<2.2"}
# The one combination the whole suite runs on with coverage (`nox -s tests`): the newest,
# whose sys.monitoring core ("sysmon", Python 3.12+) made the tracker tests' coverage cost
# half of what Python 3.11's C tracer does (3.12's and 3.13's C tracer cost more still).
COVERAGE_PYTHON, COVERAGE_SQLALCHEMY = "3.13", "2.1"
# Besides it, CI (`nox -t ci`) runs CORE_TESTS without coverage on the oldest combination
# and on Python 3.12 with SQLAlchemy 2.1, so that every supported Python and both
# SQLAlchemy series run in CI.
CI_COMBINATIONS = {("3.11", "2.0"), ("3.12", "2.1")}
# The suite on every core, whole test files to one worker (a module's shared data is
# recorded once), each worker on a PostgreSQL database of its own (tests/conftest.py).
PARALLEL = ["-n", "auto", "--dist", "loadfile"]
CORE_TESTS = [
    "tests/test_tracker.py",
    "tests/test_sync_tracker.py",
    "tests/test_store.py",
    "tests/test_migrations.py",
    "tests/test_sandbox.py",
    "tests/test_sandbox_decorators.py",
    "tests/test_sandbox_scores.py",
    "tests/test_metrics.py",
    "tests/test_metric_values.py",
    "tests/test_metric_queries.py",
]


def _combinations(ci_tagged: bool) -> list[object]:
    """Every supported (python, sqlalchemy), those in CI_COMBINATIONS tagged ``ci`` if asked."""
    return [
        nox.param(
            python,
            sqlalchemy,
            tags=["ci"] if ci_tagged and (python, sqlalchemy) in CI_COMBINATIONS else [],
        )
        for python in PYTHONS
        for sqlalchemy in SQLALCHEMY
    ]


def _install(session: nox.Session, sqlalchemy: str) -> None:
    """The project (editable) with its test extras and the given SQLAlchemy series."""
    session.install("-e", ".[dev,postgres]", SQLALCHEMY[sqlalchemy])
    session.run(
        "python", "-c", "import sys, sqlalchemy; print(sys.version, sqlalchemy.__version__)"
    )


# A one-item list, so its virtualenv is named for the version (.nox/tests-3-13) and one
# made for another Python before is not reused.
@nox.session(python=[COVERAGE_PYTHON], tags=["ci"])
def tests(session: nox.Session) -> None:
    """Run the test suite with coverage of the tracker core."""
    _install(session, COVERAGE_SQLALCHEMY)
    session.run(
        "pytest",
        *PARALLEL,
        "--cov=healthchain",
        "--cov-report=term",
        "--durations=25",  # the slowest tests, to keep the CI run short
        *session.posargs,
        env={"PYTHONDEVMODE": "1", "COVERAGE_CORE": "sysmon", **os.environ},
    )
    session.run("coverage", "report", "--include=*/healthchain/tracking/*", "--fail-under=90")


@nox.session
@nox.parametrize(["python", "sqlalchemy"], _combinations(ci_tagged=False))
def suite(session: nox.Session, sqlalchemy: str) -> None:
    """The whole suite on one supported combination, without coverage."""
    _install(session, sqlalchemy)
    session.run("pytest", *PARALLEL, *session.posargs, env={"PYTHONDEVMODE": "1", **os.environ})


@nox.session
@nox.parametrize(["python", "sqlalchemy"], _combinations(ci_tagged=True))
def core(session: nox.Session, sqlalchemy: str) -> None:
    """The tracker, sandbox and metrics tests (CORE_TESTS) on one supported combination."""
    _install(session, sqlalchemy)
    session.run(
        "pytest",
        *PARALLEL,
        *CORE_TESTS,
        *session.posargs,
        env={"PYTHONDEVMODE": "1", **os.environ},
    )


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


@nox.session(python=PYTHON, tags=["ci"])
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


@nox.session(python=PYTHON, tags=["ci"])
def docs(session: nox.Session) -> None:
    """Build the documentation site; a broken link or a missing reference fails it."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")
