"""What runs measured, on the command line: ``experiments list`` sorted, filtered and with
metric and param columns; ``experiments compare``; ``experiments show``'s params, metrics,
scores and saved files. On SQLite and PostgreSQL, through Typer's runner and (where the
width comes from the shell) a real process.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers.cli import assert_one_line_error, run
from helpers.shared import kept_read_only
from helpers.storage import Storage
from rich.console import Console

from healthchain.cli._list_table import MAX_COLUMNS, ValueColumn, common_metric_columns, list_table
from healthchain.tracking import (
    Experiment,
    ExperimentStatus,
    ExperimentTracker,
    RequestRecord,
)

# name: (metrics, params, tags)
RUNS = {
    "discharge-summary-v2": (
        {"acc": 0.81, "latency_p95_ms": 120.5, "failures": 0, "f1": 0.7},
        {"model": "gpt-4o", "epochs": 3},
        {"team": "a"},
    ),
    "triage": (
        {"acc": 0.9, "latency_p95_ms": 300.0, "failures": 2, "f1": 0.8},
        {"model": "llama", "epochs": 4},
        {"team": "a"},
    ),
    "baseline": ({"acc": 0.55, "latency_p95_ms": 90.25}, {"model": "gpt-4o", "epochs": 3}, {}),
    "no-metrics": ({}, {}, {"team": "b"}),
}
FILES_DIR = "/srv/output/saved-run"


@pytest.fixture(scope="module")
def runs(shared_storage: Storage) -> Iterator[dict[str, str]]:
    """Four finished runs, oldest first as in ``RUNS``; triage scored its requests and
    saved its files.

    Recorded once per backend for the module, whose tests only read them (checked).
    """
    ids: dict[str, str] = {}
    now = datetime.now(UTC)
    with ExperimentTracker(shared_storage.uri, project_name="metrics") as tracker:
        for name, (metrics, params, tags) in RUNS.items():
            ids[name] = tracker.start_experiment(
                name, tags=tags, pipeline_config={"temperature": 0.2 if name == "triage" else 0.7}
            )
            if metrics:
                tracker.log_metrics(ids[name], metrics)
            if params:
                tracker.log_params(ids[name], params)
            tracker.end_experiment(ids[name])
        tracker.log_requests(
            ids["triage"],
            [
                RequestRecord(
                    i,
                    now + timedelta(milliseconds=i),
                    10.0 * (i + 1),
                    200,
                    None,
                    {"relevance": 0.25 * i, "safety": math.nan if i else 1.0},
                )
                for i in range(3)
            ],
        )
    shared_storage.query(
        "UPDATE experiments SET files_dir = ? WHERE id = ?", FILES_DIR, ids["triage"]
    )
    ids["uri"] = shared_storage.uri
    with kept_read_only(shared_storage):
        yield ids


def _ok(*args: str, columns: int | None = None) -> str:
    result = run(*args, env={} if columns is None else {"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def _listed(runs: dict[str, str], *args: str) -> list[str]:
    """The names ``experiments list`` gives, in its order."""
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--format", "json", *args)
    by_id = {v: k for k, v in runs.items()}
    return [by_id[e["id"]] for e in json.loads(out)]


def _header(out: str) -> list[str]:
    return out.splitlines()[1].replace("start (UTC)", "start").split()


# --- experiments list: filters, order, columns --------------------------------------------


def test_metric_and_param_filters(runs: dict[str, str]) -> None:
    assert _listed(runs, "--metric", "acc>0.6") == ["triage", "discharge-summary-v2"]
    assert _listed(runs, "--metric", "acc>0.6", "--metric", "failures<1") == [
        "discharge-summary-v2"
    ]
    assert _listed(runs, "--param", "model=gpt-4o") == ["baseline", "discharge-summary-v2"]
    # a value that reads as JSON is JSON: epochs=3 is the number 3, not the text "3"
    assert _listed(runs, "--param", "epochs=3", "--param", "model=gpt-4o") == [
        "baseline",
        "discharge-summary-v2",
    ]
    assert _listed(runs, "--param", 'epochs="3"') == []
    table = _ok("experiments", "list", "--storage-uri", runs["uri"], "--metric", "acc>5")
    assert table == "no experiments match these filters\n"


def test_export_takes_the_same_filters(runs: dict[str, str]) -> None:
    result = run(
        "experiments", "export", "-o", "-", "--storage-uri", runs["uri"], "--metric", "acc>=0.9"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["name"] for row in rows] == ["triage"]
    assert result.stderr == "exported 1 experiment to stdout\n"


def test_sort_by_a_metric_either_way_and_by_fields(runs: dict[str, str]) -> None:
    # an experiment without the metric comes last both ways
    assert _listed(runs, "--sort", "-metrics.acc") == [
        "triage",
        "discharge-summary-v2",
        "baseline",
        "no-metrics",
    ]
    assert _listed(runs, "--sort", "metrics.acc") == [
        "baseline",
        "discharge-summary-v2",
        "triage",
        "no-metrics",
    ]
    assert _listed(runs, "--sort", "name") == sorted(RUNS)
    assert _listed(runs, "--sort", "start_time") == list(RUNS)
    # ties (here: no f1 at all) go to the next key
    assert _listed(runs, "--sort", "metrics.f1", "--sort", "-name") == [
        "discharge-summary-v2",
        "triage",
        "no-metrics",
        "baseline",
    ]
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--sort", "-metrics.acc")
    assert out.startswith("4 experiments, acc (highest first)\n")
    out = _ok(
        "experiments",
        "list",
        "--storage-uri",
        runs["uri"],
        "--sort",
        "metrics.f1",
        "--sort",
        "-name",
    )
    assert out.startswith("4 experiments, f1 (lowest first), then name (Z to A)\n")
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--sort", "-duration")
    assert out.startswith("4 experiments, duration (longest first)\n")


def test_the_limit_note_names_the_order(runs: dict[str, str]) -> None:
    args = ("experiments", "list", "--storage-uri", runs["uri"], "--limit", "2")
    assert run(*args).stderr == "showing the newest 2; pass --limit 0 to list all\n"
    sorted_ = run(*args, "--sort", "-metrics.acc")
    assert sorted_.stderr == "showing the first 2 in this order; pass --limit 0 to list all\n"


def test_default_columns_are_the_most_common_metrics(runs: dict[str, str]) -> None:
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], columns=200)
    # acc and latency_p95_ms: three runs each; f1 and failures: two (ties by key)
    assert _header(out) == [
        "id",
        "name",
        "project",
        "status",
        "start",
        "duration",
        "acc",
        "latency_p95_ms",
        "f1",
        "failures",
        "tags",
    ]
    triage = next(line for line in out.splitlines() if " triage " in line)
    assert "0.9" in triage and "300" in triage and "team=a" in triage


def test_picked_columns_and_the_sorted_metric_always_show(runs: dict[str, str]) -> None:
    out = _ok(
        "experiments",
        "list",
        "--storage-uri",
        runs["uri"],
        "--columns",
        "params.model,params.epochs",
        "--columns",
        "metrics.f1",
        "--sort",
        "-metrics.failures",
        columns=80,
    )
    assert max(len(line) for line in out.splitlines()) <= 80
    header = _header(out)
    assert header[:3] == ["id", "name", "status"]
    assert header[-4:] == ["model", "epochs", "f1", "failures"]
    triage = next(line for line in out.splitlines() if " triage " in line)
    assert triage.split()[-4:] == ["llama", "4", "0.8", "2"]
    # a picked column nobody has is still a column, empty
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--columns", "params.seed")
    assert "seed" in _header(out)


def test_a_metric_filter_shows_its_metric(runs: dict[str, str]) -> None:
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--metric", "f1>0", columns=60)
    assert "f1" in _header(out) and max(len(line) for line in out.splitlines()) <= 60


def _fits(out: str, width: int) -> None:
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= width, out
    assert not [line for line in lines if line != line.rstrip()], "trailing spaces"
    for name in RUNS:  # names up to 20 characters: whole, on one line
        assert any(f" {name} " in f"{line} " for line in lines), (name, out)


def _metric_headers(out: str) -> list[str]:
    return [h for h in _header(out) if h in {"acc", "latency_p95_ms", "f1", "failures"}]


def test_at_80_and_120_columns_metric_columns_give_way_in_the_stated_order(
    runs: dict[str, str],
) -> None:
    # The ids' widths (their shortest unique prefixes) vary from run to run, and with
    # them which step of FIT_ORDER is reached; test_fit_order_with_metric_columns pins
    # each step on fixed widths.
    wide = _ok("experiments", "list", "--storage-uri", runs["uri"], columns=120)
    _fits(wide, 120)
    assert "project" not in _header(wide)
    assert _metric_headers(wide) == ["acc", "latency_p95_ms", "f1", "failures"]
    narrow = _ok("experiments", "list", "--storage-uri", runs["uri"], columns=80)
    _fits(narrow, 80)
    for gone in ("project", "duration", "tags"):  # each goes before any metric
        assert gone not in _header(narrow)
    shown = _metric_headers(narrow)  # the least common go first
    assert shown and shown == ["acc", "latency_p95_ms", "f1", "failures"][: len(shown)]


def _experiment(i: int, name: str, metrics: dict[str, float]) -> Experiment:
    start = datetime(2026, 12, 6, 9, 30, i, tzinfo=UTC)
    return Experiment(
        id=f"0000000{i}-0000-7000-8000-000000000000",
        name=name,
        project="summarisation-project",
        start_time=start,
        end_time=start + timedelta(seconds=2.5),
        status=ExperimentStatus.COMPLETED,
        tags={"model": "zephyr-7b-beta", "dataset": "mimic-discharge-notes"},
        pipeline_config=None,
        metrics=metrics,
        params={"model": "zephyr-7b-beta"},
    )


FIXED = [
    _experiment(1, "discharge-summary-v2", {"acc": 0.8125, "latency_p95_ms": 120.5, "f1": 0.7}),
    _experiment(2, "triage", {"acc": 0.9, "latency_p95_ms": 300.0, "failures": 2}),
    _experiment(3, "baseline", {"acc": 0.55}),
]
FIXED_IDS = {e.id: e.id[:8] for e in FIXED}


@pytest.mark.parametrize(
    ("width", "header"),
    [
        (
            200,
            "id name project status start duration acc latency_p95_ms f1 failures tags",
        ),
        (120, "id name status start duration acc latency_p95_ms f1 failures tags"),
        (100, "id name status start acc latency_p95_ms f1 failures"),
        (80, "id name status start acc latency_p95_ms"),
        (66, "id name status start acc"),
        (56, "id name status start"),
    ],
)
def test_fit_order_with_metric_columns(width: int, header: str) -> None:
    out = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
    table = list_table(out, "t", FIXED, FIXED_IDS, defaults=common_metric_columns(FIXED))
    out.print(table)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert _header(text) == header.split()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width


def test_picked_columns_stay_when_defaults_go() -> None:
    picked = [ValueColumn("params", "model"), ValueColumn("metrics", "failures")]
    for width, header in (
        (80, "id name status start model failures"),
        (70, "id name status model failures"),
    ):
        out = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
        out.print(list_table(out, "t", FIXED, FIXED_IDS, picked, common_metric_columns(FIXED)))
        text = out.file.getvalue()  # type: ignore[attr-defined]
        # the defaults went first, then the start column (FIT_ORDER's last but one step)
        assert _header(text) == header.split()
        assert "zephyr-7b-beta" in text
    out = Console(width=50, file=io.StringIO(), color_system=None, highlight=False)
    out.print(list_table(out, "t", FIXED, FIXED_IDS, picked))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 50
    # narrower than every layout: a picked column folds, it never loses characters
    assert text.count("zephyr-7b-") == 3 and text.count("beta") == 3
    assert common_metric_columns(FIXED, 2) == [
        ValueColumn("metrics", "acc"),
        ValueColumn("metrics", "latency_p95_ms"),
    ]


def test_a_real_terminal_at_80_columns(runs: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "healthchain.cli", "experiments", "list", "--sort", "-metrics.acc"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", "HEALTHCHAIN_STORAGE_URI": runs["uri"]},
    )
    assert done.returncode == 0, done.stderr
    _fits(done.stdout, 80)
    # acc is what the list is ordered by: it stays while the other metrics give way
    assert _metric_headers(done.stdout)[0] == "acc"
    names = [line.split()[1] for line in done.stdout.splitlines()[3:]]
    assert names == ["triage", "discharge-summary-v2", "baseline", "no-metrics"]


def test_json_and_csv_carry_metrics_and_params(runs: dict[str, str]) -> None:
    document = json.loads(
        _ok("experiments", "list", "--storage-uri", runs["uri"], "--format", "json")
    )
    triage = next(e for e in document if e["name"] == "triage")
    assert triage["metrics"] == RUNS["triage"][0]
    assert triage["params"] == RUNS["triage"][1]
    assert triage["id"] == runs["triage"]  # whole
    out = _ok("experiments", "list", "--storage-uri", runs["uri"], "--format", "csv")
    row = next(r for r in csv.DictReader(io.StringIO(out)) if r["name"] == "triage")
    assert json.loads(row["metrics"]) == RUNS["triage"][0]
    assert json.loads(row["params"]) == RUNS["triage"][1]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--metric", "acc"), ("metric filter 'acc' has no operator", "e.g. acc>0.5")),
        (("--metric", "acc>high"), ("compares with 'high', which is not a number",)),
        (("--metric", ">0.5"), ("metric filter '>0.5' has no metric key",)),
        (("--metric", "acc>1", "--metric", "acc<2"), ("('acc>1' and 'acc<2')",)),
        (("--param", "model"), ("param filter 'model' has no '='",)),
        (("--param", "=x"), ("param filter '=x' has an empty key",)),
        (("--param", "a=1", "--param", "a=2"), ("param 'a' is filtered on twice",)),
        (("--sort", "accuracy"), ("unknown order_by key 'accuracy'", "'metrics.<key>'")),
        (("--sort", "metrics."), ("'metrics.'",)),
        (("--columns", "acc,,f1"), ("--columns 'acc,,f1' names an empty column",)),
        (("--columns", "params."), ("--columns 'params.' names an empty column",)),
        (
            ("--columns", ",".join(f"m{i}" for i in range(MAX_COLUMNS + 1))),
            (f"picks {MAX_COLUMNS + 1} columns; at most {MAX_COLUMNS}", "'m0,m1,"),
        ),
    ],
)
def test_bad_list_options_are_one_line_errors_naming_the_value(
    runs: dict[str, str], args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    result = run("experiments", "list", "--storage-uri", runs["uri"], *args)
    assert_one_line_error(result, 1, *needles)
    assert result.stdout == ""


# --- experiments compare -----------------------------------------------------------------


def _prefix(runs: dict[str, str], name: str) -> str:
    """The shortest unique prefix of ``name``'s id, as the list table shows it."""
    with ExperimentTracker(runs["uri"]) as tracker:
        return tracker.abbreviate_ids([runs[name]])[runs[name]]


def _compare(runs: dict[str, str], *names: str, columns: int | None = None) -> str:
    # a whole id or a unique prefix both name a run
    ids = [runs[name] if name == "triage" else _prefix(runs, name) for name in names]
    return _ok("experiments", "compare", *ids, "--storage-uri", runs["uri"], columns=columns)


def _ids(runs: dict[str, str]) -> list[str]:
    return [runs[name] for name in RUNS]


def _row(out: str, section: str, key: str) -> list[str]:
    """The cells of ``key``'s row in ``section`` (the marks included), split on spaces."""
    lines = out.split(f"\n{section}\n", 1)[1].splitlines()
    return next(line.split() for line in lines if key in line.split()[:2])


def test_compare_marks_differing_values_and_the_best_metric(runs: dict[str, str]) -> None:
    # whole ids and unique prefixes both name runs; piped: no width, every value whole
    out = _compare(runs, "discharge-summary-v2", "triage", "baseline")
    assert _row(out, "params", "model") == ["≠", "model", "gpt-4o", "llama", "gpt-4o"]
    assert _row(out, "params", "epochs") == ["≠", "epochs", "3", "4", "3"]
    assert _row(out, "tags", "team") == ["≠", "team", "a", "a"]  # baseline has none
    assert _row(out, "pipeline config", "temperature") == ["≠", "temperature", "0.7", "0.2", "0.7"]
    # higher is better...
    assert _row(out, "latest metrics", "acc") == ["≠", "acc", "0.81", "0.9", "*", "0.55"]
    assert _row(out, "latest metrics", "f1") == ["≠", "f1", "0.7", "0.8", "*"]
    # ...but not for latencies and failures
    assert _row(out, "latest metrics", "latency_p95_ms") == [
        "≠", "latency_p95_ms", "120.5", "300", "90.25", "*"
    ]  # fmt: skip
    assert _row(out, "latest metrics", "failures") == ["≠", "failures", "0", "*", "2"]
    assert out.rstrip().endswith("≠ the values differ")
    assert "lowest for metrics ending in _ms, loss, error, errors, failures" in out
    runs_rows = out.split("\nparams\n")[0]
    assert "discharge-summary-v2" in runs_rows and "3 (0 failed)" in runs_rows
    assert "20.0 / 30.0 ms" in runs_rows  # triage's p50 / p95
    assert not [line for line in out.splitlines() if line != line.rstrip()]


def test_compare_of_equal_values_marks_nothing(runs: dict[str, str]) -> None:
    out = _compare(runs, "discharge-summary-v2", "baseline")
    assert _row(out, "params", "model") == ["model", "gpt-4o", "gpt-4o"]
    assert _row(out, "params", "epochs") == ["epochs", "3", "3"]
    # a run without a param leaves its cell empty: the param differs
    out = _compare(runs, "no-metrics", "baseline")
    assert _row(out, "params", "model") == ["≠", "model", "gpt-4o"]


def test_compare_says_when_no_run_has_a_section(any_storage: Storage) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        ids = [tracker.start_experiment(name) for name in ("a", "b")]
    out = _ok("experiments", "compare", *ids, "--storage-uri", any_storage.uri)
    for line in (
        "params: none recorded",
        "latest metrics: none recorded",
        "tags: none recorded",
        "pipeline config: none recorded",
    ):
        assert line in out.splitlines()
    assert "INTERRUPTED" in out  # closing the tracker interrupted both


def test_a_negative_zero_metric_is_shown_as_stored(any_storage: Storage) -> None:
    # -0.0 keeps its sign on PostgreSQL; SQLite stores it as 0 (docs/guide/metrics.md).
    shown, stored = ("0", 0.0) if any_storage.kind == "sqlite" else ("-0", -0.0)
    with ExperimentTracker(any_storage.uri) as tracker:
        run_id = tracker.start_experiment("signed")
        tracker.log_metric(run_id, "delta", -0.0)
        tracker.end_experiment(run_id)
    out = _ok("experiments", "show", run_id, "--storage-uri", any_storage.uri, "--format", "json")
    value = json.loads(out)["metrics"]["delta"]
    assert (value, math.copysign(1.0, value)) == (stored, math.copysign(1.0, stored))
    table = _ok("experiments", "list", "--storage-uri", any_storage.uri, "--columns", "delta")
    (row,) = [line for line in table.splitlines() if "signed" in line]
    assert row.split()[-1] == shown, row


@pytest.mark.parametrize("columns", [80, 120])
def test_compare_fits_the_terminal(runs: dict[str, str], columns: int) -> None:
    out = _compare(runs, *RUNS, columns=columns)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns, out
    assert not [line for line in lines if line != line.rstrip()]
    assert "0.9 *" in out


def test_compare_in_a_real_terminal_at_80_columns(runs: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "healthchain.cli", "experiments", "compare", *_ids(runs)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", "HEALTHCHAIN_STORAGE_URI": runs["uri"]},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "latest metrics" in lines


def test_compare_errors_name_the_ids(runs: dict[str, str]) -> None:
    uri = ("--storage-uri", runs["uri"])
    one = run("experiments", "compare", runs["triage"], *uri)
    assert_one_line_error(one, 1, "compare takes 2 to 10 experiments, got 1", repr(runs["triage"]))
    assert "name another" in one.stderr
    many = run("experiments", "compare", *[runs["triage"]] * 11, *uri)
    assert_one_line_error(many, 1, "got 11", "name fewer")
    same = run("experiments", "compare", runs["triage"], runs["triage"][:-4], *uri)
    assert_one_line_error(
        same, 1, f"{runs['triage'][:-4]!r} names the same experiment as {runs['triage']!r}"
    )
    unknown = run("experiments", "compare", runs["triage"], "ffffffff", *uri)
    assert_one_line_error(unknown, 1, "no experiment whose id starts with 'ffffffff'")
    ambiguous = run("experiments", "compare", runs["triage"], runs["triage"][:4], *uri)
    assert_one_line_error(ambiguous, 1, f"id prefix {runs['triage'][:4]!r} matches 4 experiments")
    none = run("experiments", "compare", *uri)
    assert_one_line_error(none, 2, "Missing argument")
    assert unknown.stdout == same.stdout == ""


# --- experiments show ----------------------------------------------------------------------


def test_show_has_params_metrics_scores_and_saved_files(runs: dict[str, str]) -> None:
    out = _ok(
        "experiments", "show", _prefix(runs, "triage"), "--storage-uri", runs["uri"], columns=80
    )
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not [line for line in lines if line != line.rstrip()]
    assert ["saved", "files", FILES_DIR] in [line.split() for line in lines]
    cells = [line.replace("│", " ").split() for line in lines]
    assert ["model", "llama"] in cells and ["epochs", "4"] in cells
    assert ["acc", "0.9"] in cells and ["latency_p95_ms", "300"] in cells
    # each score's mean over the requests that have it; NaN left out, as the run does
    assert ["relevance", "0.25", "3"] in cells
    assert ["safety", "1", "1"] in cells
    assert "scores over the requests" in lines


def test_show_says_what_a_run_has_not_recorded(runs: dict[str, str]) -> None:
    out = _ok("experiments", "show", runs["no-metrics"], "--storage-uri", runs["uri"])
    for line in ("params: none recorded", "metrics: none recorded", "scores: none recorded"):
        assert line in out.splitlines()
    assert "saved files" not in out


def test_show_json_keeps_metrics_params_and_the_files_folder(runs: dict[str, str]) -> None:
    document = json.loads(
        _ok("experiments", "show", runs["triage"], "--storage-uri", runs["uri"], "--format", "json")
    )
    assert document["files_dir"] == FILES_DIR
    assert document["metrics"] == RUNS["triage"][0]
    assert document["params"] == RUNS["triage"][1]
