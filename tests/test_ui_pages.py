"""The experiment and compare pages in-process, on a SQLite file and on PostgreSQL:
params, metrics and their downsampled charts, scores, saved files, stale and live runs,
and the compare page's tables, marks and errors."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers.dashboard import dashboard_client
from helpers.shared import kept_read_only
from helpers.storage import Storage

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentTracker,
    RequestRecord,
)
from healthchain.ui import create_app
from healthchain.ui._pages import READ_CONCURRENCY, SQLITE_READ_CONCURRENCY, gather
from healthchain.ui._series import MAX_POINTS, OVERLAID_POINTS

pytestmark = pytest.mark.anyio

XSS = "<script>alert(1)</script>"
LONG = 5000  # steps of the long history: past MAX_POINTS, so it is downsampled
SPIKE = 4321  # one step of it far above the rest: downsampling must keep it


def embedded_json(html: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html)
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


def _record(i: int, scores: dict[str, float] | None) -> RequestRecord:
    failed = i % 5 == 0
    now = datetime.now(UTC)
    return RequestRecord(
        i, now, 10.0 + i, 500 if failed else 200, "boom" if failed else None, scores
    )


async def _record_runs(uri: str) -> dict[str, str]:
    ids: dict[str, str] = {}
    async with AsyncExperimentTracker(uri) as tracker:
        for n, lr in enumerate([0.1, 0.01, 0.001]):
            run = await tracker.start_experiment(
                f"run-{n}",
                tags={"model": "llama" if n == 2 else "zephyr", "note": XSS},
                pipeline_config={"template": "cards.json", "temperature": n},
            )
            await tracker.log_params(run, {"lr": lr, "batch": 32, "opt": XSS})
            await tracker.log_metrics(run, {"acc": 0.5 + n / 10, "latency_p95_ms": 100.0 - n})
            await tracker.log_metrics(run, {"acc": 0.6 + n / 10, "latency_p95_ms": 90.0 + n})
            if n == 0:
                await tracker.log_metric(run, "nan_metric", math.nan)
            scores = [{"f1": i / 20, "rouge": 0.5} for i in range(20)]
            await tracker.log_requests(run, [_record(i, scores[i]) for i in range(20)])
            await tracker.end_experiment(run)
            ids[f"run{n}"] = run
        ids["long"] = run = await tracker.start_experiment("long")
        async with anyio.create_task_group() as tg:
            # Queued together, the writer commits them in a few batches: a quick setup.
            for step in range(LONG):
                value = 1000.0 if step == SPIKE else math.sin(step / 100)
                tg.start_soon(partial(tracker.log_metric, run, "wave", value, step=step))
        await tracker.end_experiment(run)
    return ids


@pytest.fixture(scope="module")
def runs(shared_storage: Storage) -> Iterator[dict[str, str]]:
    """Three finished runs with params, metrics and scored requests; a long history; a
    RUNNING run; a stale one (its heartbeat planted an hour back).

    Recorded once per backend for the whole module: its tests only read them, which
    ``kept_read_only`` checks after the last one.
    """
    ids = asyncio.run(_record_runs(shared_storage.uri))
    with ExperimentTracker(shared_storage.uri, heartbeat_interval=3600) as tracker:
        ids["running"] = tracker.start_experiment("still-going")
        ids["stale"] = tracker.start_experiment("gone-quiet")
        beat = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None)
        shared_storage.query(
            "UPDATE experiments SET heartbeat_at = ?, heartbeat_interval = ? WHERE id = ?",
            beat.isoformat(" ") if shared_storage.path is not None else beat,
            10.0,
            ids["stale"],
        )
        shared_storage.query(
            "UPDATE experiments SET files_dir = ? WHERE id = ?", "/srv/out/<run-0>", ids["run0"]
        )
        with kept_read_only(shared_storage):
            yield ids
        tracker.end_experiment(ids["running"])
        tracker.end_experiment(ids["stale"])


async def test_experiment_page_params_metrics_scores_and_files(
    shared_storage: Storage, runs: dict[str, str]
) -> None:
    async with dashboard_client(shared_storage.uri) as client:
        html = (await client.get(f"/experiments/{runs['run0']}")).text
    params = re.search(r'<table class="kv params">(.*?)</table>', html, re.S)
    assert params
    assert re.findall(r"<th>(\w+)</th>", params.group(1)) == ["batch", "lr", "opt"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in params.group(1) and XSS not in html
    metrics = dict(
        re.findall(r'<tr data-metric="(\w+)"><th>\w+</th><td class="num">([^<]*)<', html)
    )
    assert metrics == {"acc": "0.6", "latency_p95_ms": "90", "nan_metric": "nan"}
    acc = embedded_json(html, "metric-data-1")
    assert acc["key"] == "acc" and acc["x"] == [0, 1] and acc["ys"] == [[0.5, 0.6]]
    assert acc["labels"] == ["run-0"] and not acc["downsampled"]
    # NaN cannot travel in JSON: it is a gap in the chart.
    assert embedded_json(html, "metric-data-3")["ys"] == [[None]]
    scores = re.findall(r"<tr><td>(\w+)</td><td class=\"num\">(\d+)</td>", html)
    assert scores == [("f1", "20"), ("rouge", "20")]
    chart = embedded_json(html, "scores-data")
    assert chart["names"] == ["f1", "rouge"] and chart["x"] == sorted(chart["x"])
    assert len(chart["x"]) == 20 and chart["ys"][0][0] == 0.0
    assert 'href="/experiments/{}/files">/srv/out/&lt;run-0&gt;</a>'.format(runs["run0"]) in html
    assert '<span class="stale" hidden data-field="stale"' in html  # finished: never stale


async def test_a_long_history_is_downsampled_keeping_its_extremes(
    shared_storage: Storage, runs: dict[str, str]
) -> None:
    async with dashboard_client(shared_storage.uri) as client:
        html = (await client.get(f"/experiments/{runs['long']}")).text
    chart = embedded_json(html, "metric-data-1")
    assert chart["downsampled"] and "downsampled" in html
    assert len(chart["x"]) <= MAX_POINTS and chart["x"] == sorted(chart["x"])
    (ys,) = chart["ys"]
    assert max(ys) == 1000.0  # the one spike survives
    assert min(ys) == pytest.approx(-1.0, abs=1e-3)


async def test_stale_and_running_marks(shared_storage: Storage, runs: dict[str, str]) -> None:
    async with dashboard_client(shared_storage.uri) as client:
        stale = (await client.get(f"/experiments/{runs['stale']}")).text
        running = (await client.get(f"/experiments/{runs['running']}")).text
        done = (await client.get(f"/experiments/{runs['run1']}")).text
    mark = re.compile(r'<span class="stale"( hidden)? data-field="stale"')
    assert mark.search(stale).group(1) is None  # type: ignore[union-attr]
    assert mark.search(running).group(1) == " hidden"  # type: ignore[union-attr]
    assert f'data-live="/experiments/{runs["running"]}/live"' in running
    assert "data-live" not in done and "Elapsed" not in done and "Duration" in done


async def test_live_json_follows_a_running_run_until_it_ends(any_storage: Storage) -> None:
    async with (
        AsyncExperimentTracker(any_storage.uri) as tracker,
        dashboard_client(any_storage.uri) as client,
    ):
        run = await tracker.start_experiment("live")
        first = (await client.get(f"/experiments/{run}/live")).json()
        assert first["running"] and first["status"] == "RUNNING" and first["metrics"] == {}
        assert first["ended"] is None and first["heartbeat"] and not first["stale"]
        assert (first["requests"], first["p50"], first["p95"]) == (0, "—", "—")
        await tracker.log_metric(run, "acc", 0.25)
        await tracker.log_requests(run, [_record(i, None) for i in range(6)])
        second = await client.get(f"/experiments/{run}/live")
        assert second.headers["cache-control"] == "no-store"
        assert second.json()["metrics"] == {"acc": "0.25"}
        assert (second.json()["requests"], second.json()["failures"]) == (6, 2)
        assert (second.json()["p50"], second.json()["p95"]) == ("12.0", "15.0")
        await tracker.end_experiment(run)
        last = (await client.get(f"/experiments/{run}/live")).json()
        assert not last["running"] and last["status"] == "COMPLETED" and last["ended"]


async def test_live_json_of_an_unknown_run_is_404(
    shared_storage: Storage, runs: dict[str, str]
) -> None:
    async with dashboard_client(shared_storage.uri) as client:
        response = await client.get("/experiments/0190b5c8-dead/live")
    assert response.status_code == 404
    assert "'0190b5c8-dead'" in response.json()["error"]


def _table(html: str, what: str) -> list[tuple[str, bool, list[str]]]:
    """(key, marked as differing, cells) of each row of one side-by-side table."""
    body = re.search(rf'<table class="compare {what}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no {what} table"
    rows = []
    for attrs, key, cells in re.findall(
        r"<tr( class=\"differs\")?><th>([^<]*?)(?: <span[^>]*>.</span>)?</th>(.*?)</tr>",
        body.group(1),
        re.S,
    ):
        texts = re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)
        rows.append((key, bool(attrs), texts))
    return rows


async def test_compare_page_side_by_side(shared_storage: Storage, runs: dict[str, str]) -> None:
    ids = [runs["run0"], runs["run1"][:13], runs["run2"]]  # a unique prefix is accepted
    async with dashboard_client(shared_storage.uri) as client:
        response = await client.get("/compare", params=[("id", i) for i in ids])
    assert response.status_code == 200
    html = response.text
    for run in ("run0", "run1", "run2"):
        assert f'href="/experiments/{runs[run]}"' in html  # whole ids in links
    params = _table(html, "params")
    assert params[0] == ("batch", False, ["32", "32", "32"])
    assert params[1] == ("lr", True, ["0.1", "0.01", "0.001"])
    assert params[2][0] == "opt" and "&lt;script&gt;" in params[2][2][0] and XSS not in html
    assert ("model", True, ["zephyr", "zephyr", "llama"]) in _table(html, "tags")
    config = _table(html, "config")
    assert ("template", False, ["cards.json"] * 3) in config
    assert ("temperature", True, ["0", "1", "2"]) in config
    metrics = _table(html, "metrics")
    best = '<span class="mark" title="best">★</span>'
    # acc: higher is better; latency_p95_ms: lower is better; nan_metric: NaN is never best.
    assert metrics[0] == ("acc", False, ["0.6", "0.7", f"0.8 {best}"])
    assert metrics[1] == ("latency_p95_ms", False, [f"90 {best}", "91", "92"])
    assert metrics[2] == ("nan_metric", False, ["nan", "—", "—"])
    acc = embedded_json(html, "metric-data-1")
    assert acc["ys"] == [[0.5, 0.6], [0.6, 0.7], [0.7, 0.8]] and len(acc["labels"]) == 3
    latency = embedded_json(html, "latency-overlay-data")
    assert [sum(c) for c in latency["counts"]] == [20, 20, 20]
    assert len(latency["colors"]) == len(set(latency["colors"])) == 3


async def test_compare_downsamples_histories(shared_storage: Storage, runs: dict[str, str]) -> None:
    async with dashboard_client(shared_storage.uri) as client:
        html = (await client.get(f"/compare?id={runs['long']}&id={runs['run0']}")).text
    keys = [embedded_json(html, f"metric-data-{i}")["key"] for i in (1, 2, 3, 4)]
    assert keys == ["acc", "latency_p95_ms", "nan_metric", "wave"]
    wave = embedded_json(html, "metric-data-4")
    # overlaid charts get fewer x positions than one run's, and keep the spike
    assert wave["downsampled"] and len(wave["x"]) <= OVERLAID_POINTS < MAX_POINTS
    assert max(v for v in wave["ys"][0] if v is not None) == 1000.0
    assert set(wave["ys"][1]) == {None}  # run-0 has no wave


@pytest.mark.parametrize(
    ("query", "status", "named"),
    [
        ("id={a}", 400, "got 1"),
        ("", 400, "got 0"),
        ("id={a}&id={a}", 400, "already compared"),
        ("id={a}&id=0190", 404, "&#39;0190&#39;"),
        ("id={a}&id=%3Cb%3Exx", 404, "&#39;&lt;b&gt;xx&#39;"),
        ("id={a}&id=019", 400, "&#39;019&#39; is too short"),
        ("id={a}&id=01-9", 400, "hyphens"),
        ("id={a}&id={prefix}", 400, "matches"),
        ("&".join(["id={a}"] * 11), 400, "got 11"),
        # Several bad ids: the first, in the order given, is named.
        ("id=0191&id=019", 404, "&#39;0191&#39;"),
        ("id=019&id=0191", 400, "&#39;019&#39; is too short"),
    ],
)
async def test_compare_errors_name_the_id(
    shared_storage: Storage, runs: dict[str, str], query: str, status: int, named: str
) -> None:
    # Ids made in the same millisecond share their first 8 characters: an ambiguous prefix.
    prefix = runs["running"][:4]
    url = "/compare?" + query.format(a=runs["run0"], prefix=prefix)
    async with dashboard_client(shared_storage.uri) as client:
        response = await client.get(url)
    assert response.status_code == status
    assert named in response.text and "error-banner" in response.text


async def test_the_dashboard_reads_one_at_a_time_on_sqlite_and_overlaps_on_postgresql(
    any_storage: Storage,
) -> None:
    # On SQLite reads are CPU work on their connections' threads, so overlapping them only
    # adds GIL contention; on PostgreSQL they overlap network waits.
    async with AsyncExperimentTracker(any_storage.uri) as tracker:
        await tracker.end_experiment(await tracker.start_experiment("run"))
    app = create_app(any_storage.uri, allowed_hosts=["testserver"])
    async with app.router.lifespan_context(app) as state:
        reads = state["dashboard"].reads
    expected = SQLITE_READ_CONCURRENCY if any_storage.kind == "sqlite" else READ_CONCURRENCY
    assert (reads.total_tokens, SQLITE_READ_CONCURRENCY) == (expected, 1)


async def test_a_page_runs_at_most_its_limit_of_reads_at_once() -> None:
    # Ten runs' reads at once would take more connections than the pool keeps, each new
    # one a thread and a connect: a page holds READ_CONCURRENCY of them at a time.
    limiter = anyio.CapacityLimiter(READ_CONCURRENCY)
    running = peak = 0

    async def read(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        running -= 1
        return i

    assert await gather([partial(read, i) for i in range(10)], limiter) == list(range(10))
    assert peak == READ_CONCURRENCY < 5  # SQLAlchemy's default pool size
