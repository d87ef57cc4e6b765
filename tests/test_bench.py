"""The benchmark scripts: every one documented, and their results saying where and when."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from helpers.postgres import postgres_url, reset_postgres

from healthchain.tracking import AsyncExperimentTracker

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Writers for start_together, each writing its pid to the file named by its argument
# (if any): one says ready and on "go" prints its report; the other hangs before ready.
# The pid file is closed before the writer goes on: a ResourceWarning on its stderr would
# be quoted in the error (on Python 3.13 in CI it was).
PID = (
    "import os, pathlib, sys\n"
    "if sys.argv[1:]: pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
)
READY_WRITER = PID + "print('ready', flush=True); input(); print('{}')"
HUNG_WRITER = PID + "import time; time.sleep(600)"


def bench_module(name: str) -> ModuleType:
    """A bench module (stdlib only at import), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_readme_lists_every_script() -> None:
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([\w.]+\.py)`", readme))
    scripts = {path.name for path in BENCH.glob("*.py")}
    assert scripts <= listed, f"bench/README.md does not list {sorted(scripts - listed)}"


def test_a_writer_that_never_says_ready_fails_the_row_and_every_writer_is_killed(
    tmp_path: Path,
) -> None:
    start_together = bench_module("_pg_writers").start_together
    pid_files = [tmp_path / f"{i}.pid" for i in range(3)]
    commands = [
        [sys.executable, "-c", code, str(pid_file)]
        for code, pid_file in zip([READY_WRITER, HUNG_WRITER, READY_WRITER], pid_files, strict=True)
    ]
    with pytest.raises(RuntimeError) as caught:
        start_together(commands, ready_timeout=2.0, timeout=60)
    message = str(caught.value)
    assert re.fullmatch(
        r"writer 2 of 3 \(pid (\d+)\) did not say 'ready' within 2 s: it was opening its "
        r"tracker and writing its warm-up lifecycles; all writers killed",
        message,
    ), message
    pids = [int(pid_file.read_text()) for pid_file in pid_files]
    assert f"(pid {pids[1]})" in message
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # killed and reaped, the ready ones too
            os.kill(pid, 0)


def test_writers_that_say_ready_are_told_go_together() -> None:
    start_together = bench_module("_pg_writers").start_together
    commands = [[sys.executable, "-c", READY_WRITER]] * 3
    assert start_together(commands, ready_timeout=60, timeout=60) == ["{}\n"] * 3


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
    _bench(
        "bench_compare.py",
        "--quick",
        *("--runs", "3", "--points", "2500", "--keys", "2", "--repeat", "1"),
        *("--out", str(out)),
    )
    row = re.search(
        r"^\| 3 \| 2,500 \| 6 \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", out.read_text("utf-8"), re.M
    )
    assert row and float(row.group(1)) > 0 and float(row.group(2)) > 0
    assert "## Machine" in out.read_text("utf-8")


@pytest.mark.slow
def test_every_callgrind_mode_runs_its_workload(tmp_path: Path) -> None:
    # Without valgrind: a mode broken by an API change fails here, not in an A/B run.
    script = (
        "import asyncio, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import callgrind_lifecycle as c\n"
        "for mode in c.MODES:\n"
        "    asyncio.run(c.workload(mode, 2, f'{sys.argv[2]}/{mode}.db'))\n"
        "    print(mode)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(BENCH), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        *("seq", "conc", "get", "getm", "filter"),
        *("metric", "metricc", "metrics", "history", "values", "mfilter"),
    ]


@pytest.mark.slow
def test_the_postgresql_run_measures_every_row_and_leaves_no_database(tmp_path: Path) -> None:
    # The server of the suite's own database: the bench makes hcbench_* databases there.
    # MLflow (and its psycopg2) is not a test dependency: ours and raw asyncpg only.
    server = postgres_url()
    out = tmp_path / "results.md"
    out.write_text("# the SQLite part, kept as it was\n", encoding="utf-8")
    done = _bench(
        "run.py",
        *("--smoke", "--only", "postgres", "--no-mlflow"),
        *("--postgres", server, "--out", str(out)),
    )
    text = out.read_text(encoding="utf-8")
    head, marker, section = text.partition("<!-- PostgreSQL section")
    assert head.startswith("# the SQLite part, kept as it was") and marker, text[:500]
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^\| (\d)\. .*$", section, re.M)}
    assert sorted(rows) == [1, 2, 3, 4, 5], section[:3000]
    # Our figure and the raw-asyncpg one on every row (MLflow's column is n/a here).
    assert len(re.findall(r"\d[\d,]*/s", rows[1])) == 2, rows[1]
    # Row 2's raw column: the experiments rows only, then every row ours writes.
    assert len(re.findall(r"\d[\d,]*/s", rows[2])) == 3, rows[2]
    assert re.search(r"\d/s \(the same rows as ours, (executemany|multi-row)", rows[2]), rows[2]
    forms = r"executemany \d[\d,]*/s, multi-row from arrays \d[\d,]*/s, .* \d[\d,]*/s;"
    assert re.search(forms, section), section[:3000]
    # Row 3's raw column: the tag join's rows only, then the tracker's own two queries.
    assert len(re.findall(r"[\d.]+ ms", rows[3])) == 3, rows[3]
    assert len(re.findall(r"[\d,]+ µs", rows[4])) == 2, rows[4]
    assert rows[5].endswith("| none lost | MET |"), rows[5]
    assert "## Machine" in section
    prefix = re.search(r"databases (hcbench_[0-9a-f]{12}_)\*", done.stdout)
    assert prefix, done.stdout[-3000:]
    assert not asyncio.run(_databases(server, prefix.group(1))), "the run left databases"


@pytest.mark.slow
@pytest.mark.parametrize("what", ["lifecycles", "metrics"])
def test_the_cpu_split_measures_every_writer_and_leaves_no_database(what: str) -> None:
    server = postgres_url()
    done = _bench(
        "pg_cpu_split.py",
        *("--postgres", server, "--repeats", "1"),
        *(("--metrics", "--n", "2000") if what == "metrics" else ("--n", "256")),
    )
    unit = "point" if what == "metrics" else "lifecycle"
    assert f"CPU µs per {unit}" in done.stdout, done.stdout
    rows = re.findall(
        r"^\| (healthchain|raw)[^|]*\| ([\d,]+) \| ([\d.]+) \| ([\d.]+) ", done.stdout, re.M
    )
    assert len(rows) == (3 if what == "metrics" else 6), done.stdout
    # every writer measured: a rate, and CPU on both sides of the connection
    assert all(
        int(rate.replace(",", "")) > 0 and float(client) > 0 and float(server_us) > 0
        for _, rate, client, server_us in rows
    ), done.stdout
    prefix = re.search(r"databases (hcbench_[0-9a-f]{12}_)\*", done.stdout)
    assert prefix, done.stdout[-3000:]
    assert not asyncio.run(_databases(server, prefix.group(1))), "the run left databases"


async def _databases(server: str, prefix: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(server)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix
        )
    finally:
        await conn.close()
    return [r["datname"] for r in rows]


def _bench(script: str, *options: str) -> subprocess.CompletedProcess[str]:
    """``bench/script`` run with ``options``; it must succeed (its output is returned)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def empty_postgres(monkeypatch: pytest.MonkeyPatch) -> str:
    """The suite's PostgreSQL database, emptied, with bench/ importable (its floors)."""
    url = postgres_url()
    asyncio.run(reset_postgres(url))
    monkeypatch.syspath_prepend(str(BENCH))
    return url


def test_the_list_floor_reads_what_the_trackers_list_reads(empty_postgres: str) -> None:
    # bench_metrics' row 7c is row 5's floor only if it runs the same statements: the
    # same records, in the same order, each with its metrics
    floor = bench_module("_pg_list_floor")
    filters, order = {"project": "floor", "metrics": {"acc": (">", 0.5)}}, "metrics.p95_ms"

    async def both() -> tuple[list[str], dict[str, object]]:
        async with AsyncExperimentTracker(empty_postgres, project_name="floor") as tracker:
            for i in range(8):
                experiment_id = await tracker.start_experiment(name=f"run-{i}")
                await tracker.log_metrics(experiment_id, {"acc": i / 7, "p95_ms": (i * 5) % 8})
            ours = await tracker.list_experiments(filters, order_by=order)
        return [e.name for e in ours], await floor.floor_list(
            empty_postgres, filters, order, 1, len(ours)
        )

    ours, floored = asyncio.run(both())
    assert len(ours) == 4 and floored["first"] == ours, (ours, floored)


def test_the_history_floor_reads_what_the_trackers_history_reads(empty_postgres: str) -> None:
    # bench_metrics' row 7e is row 4's floor only if both its ways read the same points:
    # in the same order (step, then time), with the same aware times
    import asyncpg

    floor = bench_module("_pg_history_floor")

    async def three() -> tuple[list[object], ...]:
        async with AsyncExperimentTracker(empty_postgres) as tracker:
            experiment_id = await tracker.start_experiment(name="history")
            for step, value in [(2, 0.5), (0, 1.5), (1, 2.5), (1, -1.0)]:
                await tracker.log_metric(experiment_id, "loss", value, step=step)
            ours = await tracker.get_metric_history(experiment_id, "loss")
        conn = await asyncpg.connect(empty_postgres)
        try:
            version = conn.get_server_version()
            sql = floor.arrays_sql((version.major, version.minor))
            rows = await floor.by_rows(conn, experiment_id, "loss")
            arrays = await floor.by_arrays(conn, sql, experiment_id, "loss")
        finally:
            await conn.close()
        return ours, rows, arrays

    ours, rows, arrays = asyncio.run(three())
    assert [(p.step, p.value) for p in ours] == [(0, 1.5), (1, 2.5), (1, -1.0), (2, 0.5)]
    assert rows == ours and arrays == ours, (ours, rows, arrays)


def test_the_awaited_point_floor_keeps_the_latest_point_as_the_tracker_does(
    empty_postgres: str,
) -> None:
    # bench_metrics' row 7d is row 1's floor only if its one statement does the tracker's
    # work: the point stored, and the key's latest row kept by step, then time
    import asyncpg

    raw = bench_module("_pg_raw")
    steps = [(5, 0.1), (3, 0.2), (5, 0.3), (4, 0.4)]

    async def both() -> list[list[tuple[int, float]]]:
        async with AsyncExperimentTracker(empty_postgres) as tracker:
            ours = await tracker.start_experiment(name="ours")
            for step, value in steps:
                await tracker.log_metric(ours, "loss", value, step=step)
            floored = await tracker.start_experiment(name="floor")
        conn = await asyncpg.connect(empty_postgres)
        try:
            for step, value in steps:
                now = datetime.now(UTC)
                await conn.execute(raw.POINT_AND_LATEST, floored, "loss", step, now, value)
            return [
                [tuple(row) for row in await conn.fetch(
                    f"SELECT step, value FROM {table} WHERE experiment_id = $1 "
                    "ORDER BY step, timestamp", id_
                )]
                for id_ in (ours, floored)
                for table in ("metric_points", "latest_metrics")
            ]  # fmt: skip
        finally:
            await conn.close()

    ours_points, ours_latest, floor_points, floor_latest = asyncio.run(both())
    assert ours_latest == floor_latest == [(5, 0.3)], (ours_latest, floor_latest)
    assert ours_points == floor_points and len(ours_points) == 4, (ours_points, floor_points)


@pytest.mark.slow
def test_the_postgresql_metrics_run_shows_every_row_and_its_floors(tmp_path: Path) -> None:
    # MLflow is not a test dependency: ours and raw asyncpg only, so MLflow's column and
    # the ratios over it are n/a.
    out = tmp_path / "results.md"
    _bench(
        "bench_metrics.py",
        *("--quick", "--only", "postgres", "--no-mlflow"),
        *("--postgres", postgres_url(), "--out", str(out)),
    )
    section = out.read_text(encoding="utf-8").partition("# PostgreSQL")[2]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\w?)\. .*$", section, re.M)}
    assert sorted(rows) == ["1", "2", "3", "4", "5", "7", "7b", "7c", "7d", "7e"], section[:3000]
    assert re.search(r"\| [\d,]+/s \| row 1 reaches \d+% of it; MLflow / this: n/a", rows["7d"])
    floors = r"\| [\d.]+ ms / [\d.]+ ms \| row 4 reaches \d+% of it"
    assert re.search(floors, rows["7e"]), rows["7e"]
    assert re.search(r"history_floor rows [\d.]+ ms; history_floor arrays [\d.]+ ms", section)
