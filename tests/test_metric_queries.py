"""Reading metrics and params: on every record, in filters, in ``order_by``, in frames.

Against a real SQLite file and the real PostgreSQL server. A NaN metric matches no
comparison (``!=`` included); in an ordering NaN comes after every number and a missing
metric after NaN, in both directions; ties stay newest first.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import anyio
import pandas as pd
import pytest
from helpers.storage import Storage
from typer.testing import CliRunner

from healthchain._formatting import EXPERIMENT_COLUMNS, experiment_record
from healthchain.cli import app as cli_app
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentTracker,
    InvalidFilterError,
    InvalidInputError,
)
from healthchain.tracking._listing import build_list_query
from healthchain.tracking._measures import CHUNK
from healthchain.tracking._search import validate_filters, validate_order_by

pytestmark = pytest.mark.anyio

NAN, INF = float("nan"), float("inf")


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Metrics dicts equal, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


async def names(tracker: AsyncExperimentTracker, **query: Any) -> list[str]:
    return [e.name for e in await tracker.list_experiments(**query)]


async def scored(tracker: AsyncExperimentTracker, acc: dict[str, float | None]) -> None:
    """One experiment per name, in order (so the last is the newest), with ``acc`` if given."""
    for name, value in acc.items():
        experiment_id = await tracker.start_experiment(name)
        if value is not None:
            await tracker.log_metric(experiment_id, "acc", value)


# --- metrics and params on every record --------------------------------------------------


async def test_records_carry_latest_metrics_and_params(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        bare = await tracker.start_experiment("bare")
        run = await tracker.start_experiment("run")
        await tracker.log_metrics(run, {"loss": 3.0, "acc": 0.5}, step=5)
        await tracker.log_metrics(run, {"loss": 1.0, "nan": NAN, "inf": INF, "ninf": -INF})
        await tracker.log_metric(run, "acc", 0.25, step=2)  # logged last, an earlier step
        await tracker.log_params(run, {"model": "t5", "layers": 12, "config": {"b": [1, 2]}})
        await tracker.end_experiment(run)

        got = await tracker.get_experiment(run)
        listed = {e.id: e for e in await tracker.list_experiments()}

    expected = {"acc": 0.5, "inf": INF, "loss": 1.0, "nan": NAN, "ninf": -INF}
    for record in (got, listed[run]):
        assert same(record.metrics, expected)
        assert list(record.metrics) == sorted(expected)  # keys in order
        assert all(type(v) is float for v in record.metrics.values())
        assert record.params == {"config": {"b": [1, 2]}, "layers": 12, "model": "t5"}
    assert listed[bare].metrics == {} and listed[bare].params == {}


async def test_every_record_of_a_long_list_gets_its_own_metrics(any_storage_uri: str) -> None:
    # more experiments than one query asks for at once: every chunk, and a partial one
    count = 2 * CHUNK + 3

    async def record(tracker: AsyncExperimentTracker, i: int) -> None:
        experiment_id = await tracker.start_experiment(f"run{i}")
        if i % 2 == 0:
            await tracker.log_metrics(experiment_id, {"i": i, "half": i / 2})
        if i % 3 == 0:
            await tracker.log_params(experiment_id, {"i": i})

    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        # Recorded concurrently, so the writer commits them in groups: a quick setup.
        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(record, tracker, i)
        records = await tracker.list_experiments()

    assert len(records) == count
    for record in records:
        i = int(record.name[3:])
        assert record.metrics == ({"half": i / 2, "i": float(i)} if i % 2 == 0 else {})
        assert record.params == ({"i": i} if i % 3 == 0 else {})


# --- filters ------------------------------------------------------------------------------

ACC = {"low": 0.2, "mid": 0.5, "high": 0.8, "top": INF, "nan": NAN, "none": None}


@pytest.mark.parametrize(
    ("operator", "bound", "expected"),
    [
        ("=", 0.5, {"mid"}),
        ("!=", 0.5, {"low", "high", "top"}),  # NaN and no value match nothing
        ("<", 0.5, {"low"}),
        ("<=", 0.5, {"low", "mid"}),
        (">", 0.5, {"high", "top"}),
        (">=", 0.5, {"mid", "high", "top"}),
        (">", INF, set()),
        ("=", INF, {"top"}),
        (">", -INF, {"low", "mid", "high", "top"}),
        ("<", 1, {"low", "mid", "high"}),  # an int bound compares as a float
        (">=", Fraction(1, 2), {"mid", "high", "top"}),  # any real number
    ],
)
async def test_metric_filters_compare_the_latest_value(
    any_storage_uri: str, operator: str, bound: float, expected: set[str]
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        await scored(tracker, ACC)
        found = await names(tracker, filters={"metrics": {"acc": (operator, bound)}})
    assert set(found) == expected


async def test_metric_param_tag_and_status_filters_combine(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        for name, acc, p95, model, env in [
            ("a", 0.9, 120.0, "t5", "prod"),
            ("b", 0.9, 80.0, "t5", "prod"),
            ("c", 0.9, 80.0, "bart", "prod"),
            ("d", 0.3, 80.0, "t5", "prod"),
            ("e", 0.9, 80.0, "t5", "dev"),
        ]:
            run = await tracker.start_experiment(name, tags={"env": env})
            await tracker.log_metrics(run, {"acc": acc, "p95_ms": p95})
            await tracker.log_params(run, {"model": model})
            if name != "a":
                await tracker.end_experiment(run)
        wanted = {
            "metrics": {"acc": (">", 0.5), "p95_ms": ["<=", 100]},  # a list works as a pair
            "params": {"model": "t5"},
            "tags": {"env": "prod"},
            "status": "COMPLETED",
        }
        assert await names(tracker, filters=wanted) == ["b"]
        assert await names(tracker, filters={"params": {"model": "t5"}}) == ["e", "d", "b", "a"]


async def test_param_filters_match_the_json_value_exactly(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        for name, value in [("int", 3), ("text", "3"), ("dict", {"a": 1, "b": [1, 2]})]:
            await tracker.log_params(await tracker.start_experiment(name), {"p": value})
        assert await names(tracker, filters={"params": {"p": 3}}) == ["int"]
        assert await names(tracker, filters={"params": {"p": "3"}}) == ["text"]
        # a dict matches whatever the order of its keys
        assert await names(tracker, filters={"params": {"p": {"b": [1, 2], "a": 1}}}) == ["dict"]
        assert await names(tracker, filters={"params": {"p": 4}}) == []
        assert await names(tracker, filters={"params": {"other": 3}}) == []


# --- order_by -----------------------------------------------------------------------------


async def test_metric_order_puts_nan_then_missing_last_both_ways(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        await scored(
            tracker,
            {
                "none1": None,
                "nan1": NAN,
                "low": 0.2,
                "tie1": 0.5,
                "top": INF,
                "none2": None,
                "bottom": -INF,
                "tie2": 0.5,
                "nan2": NAN,
            },
        )
        ascending = await names(tracker, order_by="metrics.acc")
        descending = await names(tracker, order_by="-metrics.acc")
    # ties (equal values, NaN, missing) stay newest first
    assert ascending == ["bottom", "low", "tie2", "tie1", "top", "nan2", "nan1", "none2", "none1"]
    assert descending == ["top", "tie2", "tie1", "low", "bottom", "nan2", "nan1", "none2", "none1"]


@pytest.mark.parametrize("order_by", ["metrics.acc", "-metrics.acc", "duration", "-duration"])
async def test_postgresql_sorts_by_the_value_first(postgres_uri: str, order_by: str) -> None:
    """Its sort leads with the metric's value (or the duration), NULLs last: leading with
    a boolean made every comparison go through every key."""
    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    query, params = build_list_query(validate_filters(None), None, 0, validate_order_by(order_by))
    compiled = query.compile(dialect=PGDialect_asyncpg())
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        await scored(tracker, {"a": 0.5})
    conn = await asyncpg.connect(postgres_uri.replace("postgresql+asyncpg", "postgresql"))
    try:
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) {compiled.string}",
            *(params[name] for name in compiled.positiontup or []),
        )
    finally:
        await conn.close()
    sort = json.loads(plan)[0]["Plan"]
    while sort["Node Type"] != "Sort":
        sort = sort["Plans"][0]
    value = "order0.value" if "metrics" in order_by else "((end_time - start_time))"
    # ascending is NULLS LAST by default, which EXPLAIN does not spell out
    assert sort["Sort Key"][0] == value + (" DESC NULLS LAST" if order_by[0] == "-" else "")


def test_order_by_fields_and_lists(any_storage: Storage) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with ExperimentTracker(any_storage.uri) as tracker:
        ids = {}
        # name, start offset (s), duration (s) or None while running
        for name, start, duration in [
            ("b", 3, 5.0),
            ("a", 1, None),
            ("c", 2, 0.5),
            ("a", 0, 5.0),
        ]:
            ids[name, start] = tracker.start_experiment(name)
            if duration is not None:
                tracker.end_experiment(ids[name, start])
            _set_times(any_storage, ids[name, start], base, start, duration)

        def order(order_by: Any) -> list[tuple[str, int]]:
            found = tracker.list_experiments(order_by=order_by)
            return [(e.name, int((e.start_time - base).total_seconds())) for e in found]

        assert order("start_time") == [("a", 0), ("a", 1), ("c", 2), ("b", 3)]
        assert order("-start_time") == [("b", 3), ("c", 2), ("a", 1), ("a", 0)]
        # equal names stay newest first (by id: the order they were started in)
        assert order("name") == [("a", 0), ("a", 1), ("b", 3), ("c", 2)]
        assert order("-name") == [("c", 2), ("b", 3), ("a", 0), ("a", 1)]
        # a running experiment has no duration: last both ways; equal ones newest first
        assert order("duration") == [("c", 2), ("a", 0), ("b", 3), ("a", 1)]
        assert order("-duration") == [("a", 0), ("b", 3), ("c", 2), ("a", 1)]
        assert order(["name", "-start_time"]) == [("a", 1), ("a", 0), ("b", 3), ("c", 2)]
        assert order(("-duration", "name")) == [("a", 0), ("b", 3), ("c", 2), ("a", 1)]
        assert order([]) == order(None)  # newest first
        assert order(None) == [("a", 0), ("c", 2), ("a", 1), ("b", 3)]


def _set_times(
    storage: Storage, experiment_id: str, base: datetime, start: int, duration: float | None
) -> None:
    """Start and end times of our choosing, as each backend stores them."""
    started = base + timedelta(seconds=start)
    times = [started, None if duration is None else started + timedelta(seconds=duration)]
    values: list[Any] = times
    if storage.kind == "sqlite":  # naive UTC text, as the tracker writes it
        values = [
            None if t is None else t.replace(tzinfo=None).isoformat(" ", "microseconds")
            for t in times
        ]
    storage.query(
        "UPDATE experiments SET start_time = ?, end_time = ? WHERE id = ?", *values, experiment_id
    )


async def test_filter_on_one_metric_and_order_by_another_with_pages(
    any_storage_uri: str,
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        for i in range(12):
            run = await tracker.start_experiment(f"run{i}")
            await tracker.log_metrics(run, {"acc": i / 10, "p95_ms": (i * 7) % 12})
        wanted = {"metrics": {"acc": (">", 0.5)}}
        everything = await names(tracker, filters=wanted, order_by="metrics.p95_ms")
        pages = [
            await names(tracker, filters=wanted, order_by="metrics.p95_ms", limit=2, offset=o)
            for o in (0, 2, 4)
        ]
        newest = await names(tracker, filters=wanted, limit=3)
    # acc > 0.5: runs 6..11, with p95 6, 1, 8, 3, 10, 5
    assert everything == ["run7", "run9", "run11", "run6", "run8", "run10"]
    assert [name for page in pages for name in page] == everything
    assert newest == ["run11", "run10", "run9"]


def test_sync_facade_orders_and_filters_alike(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        for name, acc in [("a", 0.1), ("b", 0.9), ("c", 0.5)]:
            tracker.log_metric(tracker.start_experiment(name), "acc", acc)
        found = tracker.list_experiments(
            {"metrics": {"acc": (">=", 0.5)}}, order_by="-metrics.acc", limit=5
        )
        frame = tracker.to_dataframe(order_by="metrics.acc")
    assert [e.name for e in found] == ["b", "c"]
    assert list(frame["name"]) == ["a", "c", "b"]


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"metrics": [("acc", (">", 0.5))]}, r"filters\['metrics'\] must be a dict, got list \[\("),
        ({"metrics": {"": (">", 0.5)}}, r"filters\['metrics'\] key '' is not a non-empty string"),
        ({"metrics": {3: (">", 0.5)}}, r"filters\['metrics'\] key 3 is not a non-empty string"),
        ({"metrics": {"a\x00b": (">", 0.5)}}, r"key 'a\\x00b' contains a NUL"),
        ({"metrics": {"acc": 0.5}}, r"filters\['metrics'\]\['acc'\] = 0\.5 is not a pair"),
        ({"metrics": {"acc": (">",)}}, r"\['acc'\] = \('>',\) is not a pair"),
        ({"metrics": {"acc": ">0.5"}}, r"\['acc'\] = '>0\.5' is not a pair"),
        (
            {"metrics": {"acc": ("==", 0.5)}},
            r"\['acc'\] has the unknown operator '=='; use one of =, !=",
        ),
        ({"metrics": {"acc": (None, 0.5)}}, r"the unknown operator None"),
        ({"metrics": {"acc": (">", "0.5")}}, r"compares with '0\.5', which is not a number"),
        ({"metrics": {"acc": (">", True)}}, r"compares with True, which is not a number"),
        ({"metrics": {"acc": (">", None)}}, r"compares with None, which is not a number"),
        ({"metrics": {"acc": (">", NAN)}}, r"compares with nan, which no value equals"),
        (
            {"metrics": {"acc": (">", 10**400)}},
            r"compares with 1000.*, an int too large for a float",
        ),
        (
            {"metrics": {f"m{i}": (">", 0) for i in range(33)}},
            r"has 33 metrics; .* at most 32 metrics",
        ),
        ({"metric": {}}, r"unknown filter key 'metric'; filters accept .*, metrics, params"),
        ({"params": "model=t5"}, r"filters\['params'\] must be a dict .* got str 'model=t5'"),
        ({"params": {"": "t5"}}, r"filters\['params'\] keys must be non-empty strings; '' is not"),
        (
            {"params": {"model": object}},
            r"filters\['params'\]\['model'\] = <class 'object'> is not JSON",
        ),
        ({"params": {f"p{i}": 1 for i in range(33)}}, r"has 33 params; .* at most 32 params"),
    ],
)
async def test_bad_metric_and_param_filters_name_the_bad_value(
    storage_uri: str, filters: Any, message: str
) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        with pytest.raises(InvalidFilterError, match=message):
            await tracker.list_experiments(filters)


@pytest.mark.parametrize(
    ("order_by", "message"),
    [
        ("accuracy", r"unknown order_by key 'accuracy'; order by 'start_time', 'name'"),
        ("-metric.acc", r"unknown order_by key '-metric\.acc'"),
        ("", r"unknown order_by key ''"),
        ("-", r"unknown order_by key '-'"),
        ("metrics.", r"order_by 'metrics\.': metric key '' is not a non-empty string"),
        ("-metrics.a\x00", r"order_by '-metrics\.a\\x00': metric key 'a\\x00' contains a NUL"),
        (["name", 3], r"order_by key 3 is not a string"),
        ({"name": 1}, r"order_by must be a string or a list of strings, got dict \{'name': 1\}"),
        (3, r"order_by must be a string or a list of strings, got int 3"),
        (["name"] * 9, r"order_by lists 9 keys; at most 8"),
    ],
)
async def test_bad_order_by_names_the_bad_value(
    storage_uri: str, order_by: Any, message: str
) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        with pytest.raises(InvalidInputError, match=message):
            await tracker.list_experiments(order_by=order_by)
        with pytest.raises(InvalidInputError, match=message):
            await tracker.to_dataframe(order_by=order_by)


# --- other writers' rows ------------------------------------------------------------------


def test_unreadable_metric_and_param_values_are_left_out(
    sqlite_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite only: it is the backend that can hold text in a float column."""
    with ExperimentTracker(sqlite_storage.uri) as tracker:
        run = tracker.start_experiment("run")
        tracker.log_metrics(run, {"good": 1.0, "bad": 2.0})
        tracker.log_params(run, {"good": 1, "bad": 2})
    sqlite_storage.query("UPDATE latest_metrics SET value = 'fast' WHERE key = 'bad'")
    sqlite_storage.query("UPDATE params SET value = '{not json' WHERE key = 'bad'")
    with (
        caplog.at_level(logging.WARNING, "healthchain.tracking"),
        ExperimentTracker(sqlite_storage.uri) as tracker,
    ):
        for record in (tracker.get_experiment(run), *tracker.list_experiments()):
            assert record.metrics == {"good": 1.0}
            assert record.params == {"good": 1}
    assert f"experiment {run}: its metric 'bad' has the value 'fast', not a number" in caplog.text
    assert f"experiment {run}: its param 'bad' JSON cannot be read" in caplog.text


# --- frames and exports -------------------------------------------------------------------


async def test_dataframe_has_a_column_per_metric_param_and_tag(any_storage_uri: str) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        first = await tracker.start_experiment("first", tags={"env": "prod"})
        await tracker.log_metrics(first, {"acc": 0.5, "loss": NAN})
        await tracker.log_params(first, {"model": "t5"})
        second = await tracker.start_experiment("second")
        await tracker.log_metrics(second, {"acc": 0.75})
        frame = await tracker.to_dataframe(order_by="name")

    extra = [c for c in frame.columns if "." in c]
    assert extra == ["metrics.acc", "metrics.loss", "params.model", "tags.env"]
    assert frame["metrics.acc"].dtype == "float64"
    assert list(frame["metrics.acc"]) == [0.5, 0.75]
    assert frame["metrics.loss"].isna().all()  # NaN, and missing, both read NaN
    assert list(frame["params.model"]) == ["t5", None]
    assert list(frame["tags.env"]) == ["prod", None]
    assert frame["metrics"][1] == {"acc": 0.75} and frame["params"][1] == {}
    assert isinstance(frame, pd.DataFrame)


async def test_exported_records_are_strict_json(storage_uri: str) -> None:
    async with AsyncExperimentTracker(storage_uri) as tracker:
        run = await tracker.start_experiment()
        await tracker.log_metrics(run, {"a": 0.5, "n": NAN, "p": INF, "m": -INF})
        await tracker.log_params(run, {"model": "t5"})
        record = experiment_record(await tracker.get_experiment(run))

    assert {"metrics", "params"} <= set(EXPERIMENT_COLUMNS)
    text = json.dumps(record, allow_nan=False)  # JSON has no NaN or infinity
    metrics = json.loads(text)["metrics"]
    assert metrics == {"a": 0.5, "m": "-Infinity", "n": "NaN", "p": "Infinity"}
    assert same(
        {k: float(v) for k, v in metrics.items()}, {"a": 0.5, "m": -INF, "n": NAN, "p": INF}
    )
    assert record["params"] == {"model": "t5"}


def test_command_line_exports_metrics_and_params(storage_uri: str) -> None:
    with ExperimentTracker(storage_uri) as tracker:
        run = tracker.start_experiment("run")
        tracker.log_metrics(run, {"acc": 0.5, "loss": NAN})
        tracker.log_params(run, {"model": "t5"})
    base = ["experiments", "list", "--storage-uri", storage_uri, "--format"]
    listed = CliRunner().invoke(cli_app, [*base, "json"])
    table = CliRunner().invoke(cli_app, [*base, "table"])
    exported = CliRunner().invoke(cli_app, [*base, "csv"])

    assert listed.exit_code == table.exit_code == exported.exit_code == 0
    (record,) = json.loads(listed.stdout)
    assert record["metrics"] == {"acc": 0.5, "loss": "NaN"}
    assert record["params"] == {"model": "t5"}
    assert run[:8] in table.stdout  # tables abbreviate ids; JSON and CSV keep them whole
    header, row = csv.reader(io.StringIO(exported.stdout))
    cells = dict(zip(header, row, strict=True))
    assert json.loads(cells["metrics"]) == {"acc": 0.5, "loss": "NaN"}
    assert json.loads(cells["params"]) == {"model": "t5"}


async def test_each_listed_record_holds_its_keys_in_order(any_storage_uri: str) -> None:
    """Keys logged out of order, interleaved across runs: each record of a list still
    holds its metrics and params by key."""
    keys = ["zeta", "alpha", "mu", "beta", "omega", "kappa"]
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        runs = [await tracker.start_experiment(f"run{i}") for i in range(4)]
        for i, run in enumerate(runs):
            mine = keys[i:] + keys[:i]  # a different first key for each run
            for key in mine:
                await tracker.log_metric(run, key, float(i))
            await tracker.log_params(run, dict.fromkeys(reversed(mine), i))
        listed = await tracker.list_experiments()
    assert len(listed) == 4
    for record in listed:
        assert list(record.metrics) == sorted(keys)
        assert list(record.params) == sorted(keys)
