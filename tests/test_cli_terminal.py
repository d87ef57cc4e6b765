"""The command line as a terminal sees it: id prefixes, ``--version``, tables that fit the
width, plurals, and no trailing spaces when piped. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from helpers.cli import assert_one_line_error, run
from helpers.shared import kept_read_only
from helpers.storage import Storage

from healthchain.tracking import ExperimentTracker

# Fixed ids (given through the side door), so each id's shortest unique prefix, and with
# it every column's width, is the same on every run. The first two share 8 characters.
IDS = {
    "exact20": "0190b5c8-4f7e-7d2a-9c1e-2f3a4b5c6d7e",
    "long": "0190b5c8-4f7f-7000-8000-000000000000",
    "short": "0190b5c9-0000-7000-8000-000000000000",
    "running": "0190b5ca-0000-7000-8000-000000000000",
}
SHORT = {
    "exact20": "0190b5c8-4f7e",
    "long": "0190b5c8-4f7f",
    "short": "0190b5c9",
    "running": "0190b5ca",
}
NAMES = {
    "exact20": "discharge-summary-v2",  # 20 characters: always whole, on one line
    "long": "an-experiment-name-that-is-longer-than-twenty",
    "short": "triage",
    "running": "still-going",
    "tagged": "[bold]not markup[/]",  # its id is the tracker's: tag rows refer to it
}
TAGS = {"model": "zephyr-7b-beta", "temperature": 0.7, "dataset": "mimic-discharge-notes"}
TAGS_TEXT = "dataset=mimic-discharge-notes, model=zephyr-7b-beta, temperature:=0.7"


def _store(storage: Storage) -> Storage:
    """Five experiments over two projects, one RUNNING, four with the ids of ``IDS``."""
    with ExperimentTracker(storage.uri, project_name="summarisation-project") as tracker:
        made = {key: tracker.start_experiment(NAMES[key]) for key in IDS}
        tagged = tracker.start_experiment(NAMES["tagged"], tags=TAGS)
        for experiment_id in [*made.values(), tagged]:
            tracker.end_experiment(experiment_id)
    for key, made_id in made.items():
        storage.query("UPDATE experiments SET id = ? WHERE id = ?", IDS[key], made_id)
    storage.query(
        "UPDATE experiments SET status = 'RUNNING', end_time = NULL WHERE id = ?", IDS["running"]
    )
    storage.query("UPDATE experiments SET project = 'triage' WHERE id = ?", IDS["short"])
    return storage


@pytest.fixture(scope="module")
def stored(shared_storage: Storage) -> Iterator[Storage]:
    """``_store``'s experiments, once per backend for the module's readers (checked: none
    of them may change a row)."""
    with kept_read_only(_store(shared_storage)):
        yield shared_storage


@pytest.fixture
def stored_for_writing(any_storage: Storage) -> Storage:
    """``_store``'s experiments in a database of the test's own, for tests that delete."""
    return _store(any_storage)


def _list(storage: Storage, *args: str, columns: int | None = None) -> str:
    env = {} if columns is None else {"COLUMNS": str(columns)}
    result = run("experiments", "list", "--storage-uri", storage.uri, *args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


# --- ids by prefix ---------------------------------------------------------------------


def test_the_table_shows_the_shortest_unique_prefixes(stored: Storage) -> None:
    lines = _list(stored, columns=200).splitlines()
    ids = [line.split()[0] for line in lines[3:]]
    tagged = ids[0]
    assert ids == [tagged, SHORT["running"], SHORT["short"], SHORT["long"], SHORT["exact20"]]
    assert len(tagged) == 8 and tagged[:4] != "0190"
    for short in ids:  # each one is what show takes back
        shown = run("experiments", "show", short, "--storage-uri", stored.uri, "--format", "json")
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["id"].startswith(short)


def test_json_and_csv_keep_whole_ids(stored: Storage) -> None:
    listed = json.loads(_list(stored, "--format", "json", columns=80))
    assert {e["id"] for e in listed} >= set(IDS.values())
    assert all(len(e["id"]) == 36 for e in listed)
    rows = _list(stored, "--format", "csv", columns=80).splitlines()[1:]
    assert {row.split(",")[0] for row in rows} >= set(IDS.values())


@pytest.mark.parametrize("given", ["0190b5c9", "0190B5C9", "0190b5c9-0", "0190b5c90", IDS["short"]])
def test_show_takes_a_unique_prefix_and_shows_the_whole_id(stored: Storage, given: str) -> None:
    result = run("experiments", "show", given, "--storage-uri", stored.uri)
    assert result.exit_code == 0, result.output
    assert IDS["short"] in result.stdout.splitlines()[0]
    assert "triage" in result.stdout


@pytest.mark.parametrize(
    ("given", "needles"),
    [
        (
            "0190",
            (
                f"id prefix '0190' matches 4 experiments ({IDS['exact20']}, {IDS['long']}, "
                f"{IDS['short']} and 1 more); give more characters of the id",
            ),
        ),
        ("0190b5c8", ("matches 2 experiments", IDS["exact20"], IDS["long"])),
        ("019", ("id prefix '019' is too short: give at least 4 characters",)),
        ("0190-b5c8", ("'0190-b5c8' has hyphens where ids have none",)),
        ("0190b5cf", ("no experiment whose id starts with '0190b5cf'", "experiments list")),
        ("no-such-id", ("no experiment whose id starts with 'no-such-id'",)),
        (IDS["short"][:-1] + "1", (f"no experiment with id '{IDS['short'][:-1]}1'",)),
    ],
)
@pytest.mark.parametrize("command", [("show",), ("delete", "--yes")])
def test_an_id_that_names_no_one_experiment_is_a_one_line_error(
    stored: Storage, command: tuple[str, ...], given: str, needles: tuple[str, ...]
) -> None:
    before = json.loads(_list(stored, "--format", "json"))
    result = run("experiments", *command, given, "--storage-uri", stored.uri)
    assert_one_line_error(result, 1, *needles)
    assert json.loads(_list(stored, "--format", "json")) == before  # nothing deleted


def test_delete_takes_prefixes_and_reports_whole_ids(stored_for_writing: Storage) -> None:
    result = run(
        "experiments",
        "delete",
        "0190b5c8-4f7f",
        "0190B5CA",
        IDS["long"],
        "--storage-uri",
        stored_for_writing.uri,
        "--yes",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": 2, "ids": [IDS["long"], IDS["running"]]}
    left = {e["id"] for e in json.loads(_list(stored_for_writing, "--format", "json"))}
    assert IDS["long"] not in left and IDS["running"] not in left and IDS["short"] in left


# --- --version ---------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata() -> None:
    result = run("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"healthchain {metadata.version('healthchain')}\n"


def test_version_of_a_source_tree_never_installed_says_so(tmp_path: Path) -> None:
    """A Python path with every installed distribution but healthchain's, and its source."""
    site = Path(metadata.distribution("typer").locate_file(""))
    path = tmp_path / "site"
    path.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith(("healthchain", "_editable_impl_healthchain")):
            (path / entry.name).symlink_to(entry)
    source = Path(__import__("healthchain").__file__).parent
    (path / "healthchain").symlink_to(source)
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p]"
        f" + [{str(path)!r}]; from healthchain.cli import main; sys.argv = ['healthchain', "
        "'--version']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        "error: healthchain's version is unknown: it runs from a source tree that was never "
        "installed; install it with 'pip install -e .' to record one\n"
    )


# --- tables that fit the terminal --------------------------------------------------------


def _header(out: str) -> list[str]:
    return out.splitlines()[1].replace("start (UTC)", "start").split()


def _fits(out: str, width: int) -> None:
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    assert not [line for line in lines if line != line.rstrip()], "trailing spaces"
    for key in ("exact20", "short", "running", "tagged"):  # names up to 20: whole, one line
        assert any(NAMES[key] in line for line in lines), (NAMES[key], out)


def test_at_80_columns_columns_are_given_up_in_the_stated_order(stored: Storage) -> None:
    out = _list(stored, columns=80)
    _fits(out, 80)
    # project, the start's year and seconds, duration go; tags shortened, not dropped
    assert _header(out) == ["id", "name", "status", "start", "tags"]
    assert "2026-" not in out and "1970-" not in out
    tagged_row = next(line for line in out.splitlines() if NAMES["tagged"] in line)
    assert tagged_row.endswith("…") and TAGS_TEXT[:8] in tagged_row
    # a longer name wraps inside its column, its first 20 characters on the first line
    assert NAMES["long"] not in out and NAMES["long"][:20] in out


def test_at_120_columns_every_column_shows(stored: Storage) -> None:
    out = _list(stored, columns=120)
    _fits(out, 120)
    assert _header(out) == ["id", "name", "project", "status", "start", "duration", "tags"]
    assert "summarisation-project" in out and "running" in out
    assert TAGS_TEXT not in out and TAGS_TEXT[:10] in out  # shortened to fit


def test_wide_terminals_and_pipes_show_everything_whole(stored: Storage) -> None:
    for out in (_list(stored, columns=200), _list(stored)):  # no COLUMNS: piped, no width
        lines = out.splitlines()
        assert _header(out) == ["id", "name", "project", "status", "start", "duration", "tags"]
        assert any(NAMES["long"] in line for line in lines) and TAGS_TEXT in out
        assert not [line for line in lines if line != line.rstrip()]
    assert max(len(line) for line in out.splitlines()) > 120


def test_narrower_than_every_layout_ids_wrap_rather_than_lose_characters(
    stored: Storage,
) -> None:
    out = _list(stored, columns=50)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 50
    fragments = "".join(line.split()[0] for line in lines[3:] if not line.startswith(" "))
    order = ("running", "short", "long", "exact20")
    assert fragments.endswith("".join(SHORT[key] for key in order)), out


def test_a_real_terminal_width_from_columns(stored: Storage) -> None:
    """The installed entry point, piped, with the width a shell exports."""
    done = subprocess.run(
        [sys.executable, "-m", "healthchain.cli", "experiments", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", "HEALTHCHAIN_STORAGE_URI": stored.uri},
    )
    assert done.returncode == 0, done.stderr
    _fits(done.stdout, 80)
    assert _header(done.stdout) == ["id", "name", "status", "start", "tags"]


def test_show_has_no_trailing_spaces(stored: Storage) -> None:
    for columns in ("80", "200"):
        result = run(
            "experiments",
            "show",
            SHORT["exact20"],
            "--storage-uri",
            stored.uri,
            env={"COLUMNS": columns},
        )
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) > 8 and not [line for line in lines if line != line.rstrip()]


# --- words ---------------------------------------------------------------------------------


def test_counts_are_in_the_singular_for_one(stored_for_writing: Storage) -> None:
    assert _list(stored_for_writing, "--limit", "0").startswith("5 experiments, newest first\n")
    one = _list(stored_for_writing, "--project", "triage")
    assert one.startswith("1 experiment, newest first\n")
    exported = run(
        "experiments",
        "export",
        "-o",
        "-",
        "--project",
        "triage",
        "--storage-uri",
        stored_for_writing.uri,
    )
    assert exported.stderr == "exported 1 experiment to stdout\n"
    deleted = run(
        "experiments", "delete", SHORT["short"], "--storage-uri", stored_for_writing.uri, "-y"
    )
    assert deleted.stdout == "deleted 1 experiment\n"
    asked = run(
        "experiments",
        "delete",
        SHORT["long"],
        SHORT["exact20"],
        "--storage-uri",
        stored_for_writing.uri,
        input="n\n",
    )
    assert asked.stderr.startswith("Delete 2 experiments: ")


def test_an_empty_result_says_so_in_words(stored: Storage, tmp_path: Path) -> None:
    assert _list(stored, "--project", "nobody") == "no experiments match these filters\n"
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run("db", "upgrade", "--storage-uri", empty).exit_code == 0
    result = run("experiments", "list", "--storage-uri", empty)
    assert result.stdout == f"no experiments recorded yet in {empty}\n"
    exported = run("experiments", "export", "-o", "-", "--storage-uri", empty)
    assert exported.stdout.startswith("id,name,") and exported.stdout.count("\n") == 1
    assert exported.stderr == "exported 0 experiments to stdout\n"
    reaped = run("experiments", "reap", "--storage-uri", empty)
    assert reaped.stdout == "no stale experiments\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("experiments", "list", "--tag", "model"), "tag filter 'model' has no '='"),
        (("experiments", "list", "--status", "DONE"), "'--status': 'DONE' is not one of"),
        (("experiments", "list", "--limit", "-1"), "got '-1'; it should be greater than or"),
        (("experiments", "list", "--limit", "x"), "got 'x'; it should be a valid integer"),
        (("experiments", "show", "01"), "id prefix '01' is too short"),
        (("experiments", "show", "0190"), "id prefix '0190' matches 4 experiments"),
        (("ui", "--port", "70000"), "got '70000'; it should be less than or equal to 65535"),
        (("ui", "--allow-host", "bad host!"), "'bad host!'"),
    ],
)
def test_messages_name_the_value_without_validation_library_prefixes(
    stored: Storage, args: tuple[str, ...], needle: str
) -> None:
    result = run(*args, "--storage-uri", stored.uri)
    assert result.exit_code in (1, 2), result.output
    assert needle in " ".join(result.stderr.split())
    for prefix in ("Value error,", "Assertion failed,", "validation error", "Input should"):
        assert prefix not in result.output


def test_list_help_states_the_order_columns_are_given_up_in() -> None:
    from healthchain.cli._list_table import FIT_ORDER

    result = run("experiments", "list", "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    positions = [text.index(step) for step in FIT_ORDER]
    assert positions == sorted(positions) and "names up to 20 characters" in text
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
