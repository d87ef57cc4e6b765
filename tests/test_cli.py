"""The ``healthchain`` command line through Typer's runner, on a SQLite file the tracker made."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import socket
import sqlite3
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, run
from helpers.filesystems import tmpfs
from helpers.pipelines import PIPELINE
from typer.testing import Result

from healthchain.tracking import Experiment, ExperimentStatus, ExperimentTracker, RequestRecord

XSS = "<script>alert(1)</script>"


@pytest.fixture
def recorded(storage_uri: str) -> dict[str, str]:
    """Four experiments over two projects, with tags, components and requests."""
    ids: dict[str, str] = {}
    now = datetime.now(UTC)
    with ExperimentTracker(storage_uri, project_name="summaries") as tracker:
        ids["first"] = tracker.start_experiment(
            "discharge", tags={"model": "zephyr", "epochs": 3}, components=PIPELINE
        )
        tracker.log_requests(
            ids["first"],
            [
                RequestRecord(i, now + timedelta(milliseconds=i), 10.0 * (i + 1), code, None)
                for i, code in enumerate([200, 200, 200, 500])
            ],
        )
        tracker.end_experiment(ids["first"])
        ids["failed"] = tracker.start_experiment("discharge", tags={"model": "llama", "note": XSS})
        tracker.end_experiment(ids["failed"], ExperimentStatus.FAILED, error="ValueError: bad")
        ids["markup"] = tracker.start_experiment(
            "[bold red]not markup[/]", tags={"model": "zephyr"}
        )
        tracker.end_experiment(ids["markup"], ExperimentStatus.INTERRUPTED)
    with ExperimentTracker(storage_uri, project_name="triage") as tracker:
        ids["triage"] = tracker.start_experiment("triage-run", tags={"model": "zephyr"})
        tracker.end_experiment(ids["triage"])
    return ids


def listed(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [e["id"] for e in json.loads(result.stdout)]


# --- experiments list -------------------------------------------------------------------


def test_list_table_shows_unique_id_prefixes_newest_first(
    storage_uri: str, recorded: dict[str, str]
) -> None:
    result = run("experiments", "list", "--storage-uri", storage_uri)
    assert result.exit_code == 0, result.output
    with ExperimentTracker(storage_uri) as tracker:
        short = tracker.abbreviate_ids(recorded.values())
    first_cells = [line.split()[0] for line in result.stdout.splitlines()[3:]]
    assert first_cells == [short[i] for i in reversed(list(recorded.values()))]
    assert all(len(s) >= 8 for s in first_cells)
    assert "[bold red]not markup[/]" in result.stdout  # user text is never Rich markup
    assert "epochs:=3" in result.stdout and "model=zephyr" in result.stdout
    assert "COMPLETED" in result.stdout and "triage" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["experiments", "list"],
        ["experiments", "list", "--format", "csv"],
        ["experiments", "show", "{triage}", "--format", "json"],
        ["experiments", "show", "{triage}"],
        ["experiments", "compare", "{triage}", "{first}"],
        ["experiments", "list", "--sort", "-metrics.acc", "--columns", "params.m"],
        ["experiments", "export", "-o", "-"],
        ["db", "upgrade"],
    ],
)
def test_terminal_commands_load_no_web_stack(
    storage_uri: str, recorded: dict[str, str], command: list[str]
) -> None:
    argv = ["healthchain", *(c.format(**recorded) for c in command), "--storage-uri", storage_uri]
    code = (
        "import sys\n"
        "from healthchain.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "web = ('starlette', 'jinja2', 'uvicorn', 'httpx', 'fastapi')\n"
        "print('loaded:', sorted(m for m in sys.modules if m.split('.')[0] in web))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    if command[0] == "experiments":
        assert recorded["triage"][:8] in done.stdout  # it did run
    assert done.stdout.splitlines()[-1] == "loaded: []"


def test_json_records_carry_every_field_of_the_experiment(
    storage_uri: str, recorded: dict[str, str]
) -> None:
    document = json.loads(
        run(
            "experiments",
            "show",
            recorded["first"],
            "--storage-uri",
            storage_uri,
            "--format",
            "json",
        ).stdout
    )
    fields = [f.name for f in dataclasses.fields(Experiment)]
    assert set(document) == {*fields, "duration_s", "requests"}
    header = next(
        csv.reader(
            io.StringIO(
                run("experiments", "list", "--storage-uri", storage_uri, "--format", "csv").stdout
            )
        )
    )
    assert header == [
        *fields[: fields.index("end_time") + 1],
        "duration_s",
        *fields[fields.index("end_time") + 1 :],
    ]


def test_list_json_is_one_document_with_filters(storage_uri: str, recorded: dict[str, str]) -> None:
    base = ("experiments", "list", "--storage-uri", storage_uri, "--format", "json")
    assert listed(run(*base)) == [recorded[k] for k in ("triage", "markup", "failed", "first")]
    assert listed(run(*base, "--project", "summaries", "--tag", "model=zephyr")) == [
        recorded["markup"],
        recorded["first"],
    ]
    assert listed(run(*base, "--status", "failed", "--status", "INTERRUPTED")) == [
        recorded["markup"],
        recorded["failed"],
    ]
    assert listed(run(*base, "--tag", "epochs:=3")) == [recorded["first"]]
    assert listed(run(*base, "--tag", "epochs=3")) == []  # the string "3" is another value
    assert listed(run(*base, "--tag", f"note={XSS}")) == [recorded["failed"]]
    assert listed(run(*base, "--name", "triage-run")) == [recorded["triage"]]

    document = json.loads(run(*base, "--tag", "epochs:=3").stdout)[0]
    assert document["components"] == [dict(c, position=i) for i, c in enumerate(PIPELINE)]
    assert document["status"] == "COMPLETED" and document["duration_s"] >= 0
    assert datetime.fromisoformat(document["start_time"]).tzinfo is not None


def test_list_limit_says_there_may_be_more(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run(
        "experiments", "list", "--storage-uri", storage_uri, "--limit", "1", "--format", "json"
    )
    assert listed(result) == [recorded["triage"]]
    assert "--limit 0" in result.stderr
    everything = run("experiments", "list", "--storage-uri", storage_uri, "--limit", "0")
    assert everything.exit_code == 0 and everything.stderr == ""


def test_list_csv(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run("experiments", "list", "--storage-uri", storage_uri, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == [recorded[k] for k in ("triage", "markup", "failed", "first")]
    failed = rows[2]
    assert failed["status"] == "FAILED" and failed["error"] == "ValueError: bad"
    assert json.loads(failed["tags"]) == {"model": "llama", "note": XSS}


def test_storage_uri_from_the_environment(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run(
        "experiments", "list", "--format", "json", env={"HEALTHCHAIN_STORAGE_URI": storage_uri}
    )
    assert len(listed(result)) == 4


def test_default_storage_is_experiments_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEALTHCHAIN_STORAGE_URI", raising=False)
    result = run("experiments", "list")
    assert_one_line_error(result, 1, "experiments.db", "no experiments database")
    assert not (tmp_path / "experiments.db").exists()  # a read never creates the file
    assert run("db", "upgrade").exit_code == 0
    assert (tmp_path / "experiments.db").exists()
    assert listed(run("experiments", "list", "--format", "json")) == []


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (("--tag", "model"), 1, ("'model'", "key=value")),
        (("--tag", "=zephyr"), 1, ("empty key",)),
        (("--tag", "epochs:=three"), 1, ("not a JSON value",)),
        (("--tag", "model=a", "--tag", "model=b"), 1, ("twice",)),
        (("--status", "DONE"), 2, ("--status", "DONE")),
        (("--limit", "-1"), 2, ("--limit",)),
        (("--format", "xml"), 2, ("--format",)),
        (("--bogus",), 2, ("--bogus",)),
    ],
)
def test_list_rejects_bad_filters_in_one_line(
    storage_uri: str,
    recorded: dict[str, str],
    args: tuple[str, ...],
    code: int,
    needles: tuple[str, ...],
) -> None:
    result = run("experiments", "list", "--storage-uri", storage_uri, *args)
    assert_one_line_error(result, code, *needles)
    assert result.stdout == ""


def test_unreachable_or_unusable_storage_is_one_line(tmp_path: Path) -> None:
    missing_dir = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    assert_one_line_error(run("experiments", "list", "--storage-uri", missing_dir), 1, "nowhere")
    a_directory = f"sqlite:///{tmp_path}"
    assert_one_line_error(
        run("experiments", "list", "--storage-uri", a_directory), 1, "is a directory"
    )
    assert_one_line_error(run("experiments", "list", "--storage-uri", "mysql://db/x"), 1, "'mysql'")
    assert_one_line_error(
        run("experiments", "list", "--storage-uri", "not a url"), 1, "is not a database URL"
    )
    # Nothing listens on port 1: connection refused, with the password masked.
    refused = run("experiments", "list", "--storage-uri", "postgresql://me:s3cret@127.0.0.1:1/db")
    assert_one_line_error(refused, 1, "127.0.0.1:1")
    assert "s3cret" not in refused.output


def test_no_command_shows_help() -> None:
    result = run("experiments")
    assert result.exit_code == 2
    assert "list" in result.output and "delete" in result.output


# --- experiments show -------------------------------------------------------------------


def test_show_table(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run("experiments", "show", recorded["first"], "--storage-uri", storage_uri)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert recorded["first"] in out and "discharge" in out and "summaries" in out
    assert out.index("preprocess") < out.index("llm") < out.index("cards")
    assert "requests: 4  failures: 1  latency p50: 20.0 ms  p95: 40.0 ms" in out


def test_show_json(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run(
        "experiments", "show", recorded["failed"], "--storage-uri", storage_uri, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["id"] == recorded["failed"]
    assert document["error"] == "ValueError: bad" and document["tags"]["note"] == XSS
    assert document["requests"] == {"count": 0, "failures": 0, "p50_ms": None, "p95_ms": None}


def test_show_unknown_id(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run("experiments", "show", "no-such-id", "--storage-uri", storage_uri)
    assert_one_line_error(result, 1, "'no-such-id'", "healthchain experiments list")


# --- experiments export -----------------------------------------------------------------


def test_export_csv_and_jsonl(storage_uri: str, recorded: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = run(
        "experiments", "export", "--storage-uri", storage_uri, "--project", "summaries",
        "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "exported 3 experiments" in result.stderr
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["id"] for r in rows} == {recorded[k] for k in ("first", "failed", "markup")}

    lines_file = tmp_path / "out.jsonl"
    result = run(
        "experiments", "export", "--storage-uri", storage_uri, "--format", "jsonl",
        "--tag", "model=zephyr", "--output", str(lines_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in lines_file.read_text("utf-8").splitlines()]
    assert [r["id"] for r in records] == [recorded[k] for k in ("triage", "markup", "first")]


def test_export_to_stdout(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run(
        "experiments", "export", "--storage-uri", storage_uri, "--format", "jsonl", "-o", "-",
        "--status", "FAILED",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [recorded["failed"]]


def test_export_errors(storage_uri: str, recorded: dict[str, str], tmp_path: Path) -> None:
    unwritable = tmp_path / "missing-dir" / "out.csv"
    result = run("experiments", "export", "--storage-uri", storage_uri, "-o", str(unwritable))
    assert_one_line_error(result, 1, "cannot write", "missing-dir")
    assert_one_line_error(run("experiments", "export", "--storage-uri", storage_uri), 2, "--output")
    bad_tag = run("experiments", "export", "--storage-uri", storage_uri, "--tag", "x", "-o", "-")
    assert_one_line_error(bad_tag, 1, "'x'")


def test_export_to_a_full_disk_leaves_the_previous_file_and_no_partial_one(
    storage_uri: str, tmp_path: Path
) -> None:
    with ExperimentTracker(storage_uri, project_name="many") as tracker:
        for index in range(80):
            tracker.end_experiment(tracker.start_experiment(f"run-{index:03d}", tags={"i": index}))
    with tmpfs(tmp_path / "disk", "size=8k") as disk:  # two pages: the old file and 4 KiB
        out = disk / "out.csv"
        out.write_text("previous export\n")
        result = run("experiments", "export", "--storage-uri", storage_uri, "-o", str(out))
        assert_one_line_error(result, 1, f"cannot write {str(out)!r}: No space left on device")
        assert sorted(path.name for path in disk.iterdir()) == ["out.csv"]
        assert out.read_text() == "previous export\n"


def test_export_to_a_device_writes_through_it(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run("experiments", "export", "--storage-uri", storage_uri, "-o", "/dev/null")
    assert result.exit_code == 0, result.output
    assert Path("/dev/null").is_char_device()


# --- experiments reap -------------------------------------------------------------------


def _left_by_a_dead_process(storage_uri: str, experiment_id: str) -> None:
    """RUNNING, last heartbeat an hour ago: what a process killed mid-run leaves."""
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(" ")
    with contextlib.closing(sqlite3.connect(storage_uri.removeprefix("sqlite:///"))) as conn, conn:
        conn.execute(
            "UPDATE experiments SET status = 'RUNNING', end_time = NULL, error = NULL, "
            "heartbeat_at = ? WHERE id = ?",
            (hour_ago, experiment_id),
        )
    conn.close()


def test_reap_marks_silent_running_experiments_failed(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri, project_name="p") as tracker:
        dead = tracker.start_experiment("dead")
    _left_by_a_dead_process(storage_uri, dead)
    with ExperimentTracker(storage_uri, project_name="p") as live:
        alive = live.start_experiment("alive")  # its process is alive while we reap

        result = run("experiments", "reap", "--storage-uri", storage_uri)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == ["marked 1 stale experiment FAILED:", dead]
        again = run("experiments", "reap", "--storage-uri", storage_uri, "--format", "json")
        assert json.loads(again.stdout) == {"reaped": []}
        nothing = run("experiments", "reap", "--storage-uri", storage_uri)
        assert nothing.stdout == "no stale experiments\n"
        shown = run("experiments", "show", dead, "--storage-uri", storage_uri, "--format", "json")
        assert json.loads(shown.stdout)["status"] == "FAILED"
        assert "heartbeat" in json.loads(shown.stdout)["error"]
        still = run("experiments", "show", alive, "--storage-uri", storage_uri, "--format", "json")
        assert json.loads(still.stdout)["status"] == "RUNNING"


def test_reap_is_not_stopped_by_another_rows_interval(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        odd, dead = tracker.start_experiment("odd"), tracker.start_experiment("dead")
    for experiment_id in (odd, dead):
        _left_by_a_dead_process(storage_uri, experiment_id)
    with contextlib.closing(sqlite3.connect(storage_uri.removeprefix("sqlite:///"))) as conn, conn:
        # An interval no tracker accepts, as another program may have written it.
        conn.execute("UPDATE experiments SET heartbeat_interval = 1e300 WHERE id = ?", (odd,))
    conn.close()

    result = run("experiments", "reap", "--storage-uri", storage_uri, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"reaped": [dead]}


def test_reap_on_missing_database(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert_one_line_error(run("experiments", "reap", "--storage-uri", uri), 1, "none.db")


# --- experiments delete -----------------------------------------------------------------


def remaining(storage_uri: str) -> set[str]:
    result = run("experiments", "list", "--storage-uri", storage_uri, "--format", "json")
    return set(listed(result))


def test_delete_asks_first(storage_uri: str, recorded: dict[str, str]) -> None:
    target = recorded["first"]
    declined = run("experiments", "delete", target, "--storage-uri", storage_uri, input="n\n")
    assert declined.exit_code == 1
    assert "Delete 1 experiment: discharge" in declined.stderr and target in declined.stderr
    assert "error: aborted" in declined.stderr and "Traceback" not in declined.output
    assert target in remaining(storage_uri)

    no_answer = run("experiments", "delete", target, "--storage-uri", storage_uri)  # EOF
    assert no_answer.exit_code == 1 and target in remaining(storage_uri)

    accepted = run("experiments", "delete", target, "--storage-uri", storage_uri, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines()[-1] == "deleted 1 experiment"  # after the echoed "y"
    assert target not in remaining(storage_uri)


def test_delete_with_yes_and_json(storage_uri: str, recorded: dict[str, str]) -> None:
    ids = [recorded["failed"], recorded["triage"], recorded["failed"]]
    result = run(
        "experiments", "delete", *ids, "--storage-uri", storage_uri, "--yes", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": 2, "ids": ids[:2]}
    assert remaining(storage_uri) == {recorded["first"], recorded["markup"]}


def test_delete_unknown_id_deletes_nothing(storage_uri: str, recorded: dict[str, str]) -> None:
    result = run(
        "experiments", "delete", recorded["first"], "typo", "--storage-uri", storage_uri, "-y"
    )
    assert_one_line_error(result, 1, "'typo'")
    assert len(remaining(storage_uri)) == 4
    assert_one_line_error(run("experiments", "delete", "--storage-uri", storage_uri), 2, "ID")


# --- db upgrade -------------------------------------------------------------------------


def test_db_upgrade(storage_uri: str, db_path: Path) -> None:
    created = run("db", "upgrade", "--storage-uri", storage_uri)
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("created the schema (revision ")
    again = run("db", "upgrade", "--storage-uri", storage_uri, "--format", "json")
    document = json.loads(again.stdout)
    assert document["before"] == document["after"] and document["storage_uri"] == storage_uri
    assert (
        "already at the newest revision"
        in run("db", "upgrade", "--storage-uri", storage_uri).stdout
    )
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"experiments", "pipeline_components", "requests"} <= tables


def test_db_upgrade_never_prints_a_password_option(storage_uri: str) -> None:
    # SQLite ignores the option; it is shown masked all the same, in every format.
    uri = f"{storage_uri}?password=s3cret-pw&token=t0ken-s3cret"
    for args in ((), ("--format", "json")):
        # SQLAlchemy 2.1 warns that pysqlite ignores the two options (naming the keys
        # only); 2.0 ignores them silently. Either way no warning may carry a secret.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = run("db", "upgrade", "--storage-uri", uri, *args)
        assert done.exit_code == 0, done.output
        assert "s3cret" not in done.output
        assert not [w for w in caught if "s3cret" in str(w.message)]
        assert "?password=***&token=***" in done.stdout
    missing = run("experiments", "list", "--storage-uri", uri.replace(".db?", "-none.db?"))
    assert_one_line_error(missing, 1, "password=***")
    assert "s3cret" not in missing.output


def test_db_upgrade_errors(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}"
    assert_one_line_error(run("db", "upgrade", "--storage-uri", uri), 1, "nowhere")
    assert_one_line_error(run("db", "upgrade", "--storage-uri", "oracle://x"), 1, "oracle")


# --- ui (serving itself is tested in test_cli_ui.py) --------------------------------------


def test_ui_errors_before_serving(
    storage_uri: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert_one_line_error(run("ui", "--storage-uri", missing), 1, "none.db")
    assert_one_line_error(run("ui", "--storage-uri", storage_uri, "--port", "70000"), 2, "--port")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run("ui", "--storage-uri", storage_uri, "--port", str(port))
    assert_one_line_error(busy, 1, f"127.0.0.1:{port}", "--port")
