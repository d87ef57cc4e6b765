"""The dashboard in-process through ``httpx.ASGITransport``, on a SQLite file the tracker made."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from helpers.dashboard import dashboard_client
from helpers.imports import import_threads
from helpers.pipelines import PIPELINE
from helpers.shared import kept_read_only, make_shared_storage
from helpers.storage import Storage
from starlette.types import Receive, Scope, Send

from healthchain.tracking import (
    ExperimentStatus,
    ExperimentTracker,
    RequestRecord,
    upgrade_database,
)
from healthchain.ui import create_app
from healthchain.ui._hosts import HostCheck

pytestmark = pytest.mark.anyio

XSS = "<script>alert(1)</script>"
BREAKOUT = "</script><script>alert(2)</script>"


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """The SQLite file ``recorded`` fills once for the whole module."""
    return make_shared_storage("sqlite", tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def recorded(shared_db: Storage) -> Iterator[dict[str, str]]:
    """30 finished runs in project "bulk" and three special ones in "summaries".

    Recorded once for the module, whose tests only read them (checked). The RUNNING
    run's writer beats hourly, so it writes nothing more while the module runs.
    """
    storage_uri = shared_db.uri
    ids: dict[str, str] = {}
    now = datetime.now(UTC)
    with ExperimentTracker(storage_uri, project_name="bulk") as tracker:
        for i in range(30):
            with tracker.track(f"bulk-{i:02d}", tags={"batch": i % 2}):
                pass
    with ExperimentTracker(
        storage_uri, project_name="summaries", heartbeat_interval=3600
    ) as tracker:
        ids["main"] = tracker.start_experiment(
            "discharge",
            tags={"model": "zephyr", "note": XSS},
            components=PIPELINE,
            pipeline_config={"template": "cards.json"},
        )
        tracker.log_requests(
            ids["main"],
            [
                RequestRecord(
                    i,
                    now + timedelta(milliseconds=10 * i),
                    5.0 + i,
                    503 if i % 10 == 0 else 200,
                    "upstream <b>timeout</b>" if i % 10 == 0 else None,
                )
                for i in range(50)
            ],
        )
        tracker.end_experiment(ids["main"])
        ids["breakout"] = tracker.start_experiment(BREAKOUT, tags={"model": "llama"})
        tracker.end_experiment(ids["breakout"], ExperimentStatus.FAILED, error=f"boom {XSS}")
        ids["running"] = tracker.start_experiment("still-going", tags={"model": "zephyr"})
        with kept_read_only(shared_db):
            yield ids
        tracker.end_experiment(ids["running"])


@pytest.fixture
async def client(shared_db: Storage, recorded: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, as a server would run it."""
    async with dashboard_client(shared_db.uri) as c:
        yield c


def names_in(html: str) -> list[str]:
    return re.findall(r'class="name" href="[^"]+">([^<]*)</a>', html)


def embedded_json(html: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html)
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


async def test_list_page_newest_first_with_pagination(client: httpx.AsyncClient) -> None:
    first = await client.get("/")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    names = names_in(first.text)
    assert names[:2] == ["still-going", "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;"]
    assert len(names) == 33

    page = await client.get("/", params={"per_page": 25})
    assert len(names_in(page.text)) == 25
    next_url = re.search(r'href="([^"]+)" rel="next"', page.text)
    assert next_url
    older = await client.get(next_url.group(1).replace("&amp;", "&"))
    assert names_in(older.text) == [f"bulk-{i:02d}" for i in range(7, -1, -1)]
    assert 'rel="next"' not in older.text and 'rel="prev"' in older.text


async def test_list_filters(client: httpx.AsyncClient, recorded: dict[str, str]) -> None:
    by_tag = await client.get("/", params={"tag": "model=zephyr"})
    assert names_in(by_tag.text) == ["still-going", "discharge"]
    by_json_tag = await client.get("/", params=[("tag", "batch:=1"), ("project", "bulk")])
    assert len(names_in(by_json_tag.text)) == 15
    failed = await client.get("/", params={"status": "failed"})
    assert recorded["breakout"] in failed.text and "discharge" not in names_in(failed.text)
    two_tags = await client.get("/", params=[("tag", "model=zephyr"), ("tag", f"note={XSS}")])
    assert names_in(two_tags.text) == ["discharge"]
    # The active filters are kept in the form and can be removed one by one.
    assert 'name="tag" value="note=&lt;script&gt;alert(1)&lt;/script&gt;"' in two_tags.text
    nothing = await client.get("/", params={"project": "nope"})
    assert "No experiments match." in nothing.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tag": "novalue"}, "tag filter &#39;novalue&#39; has no &#39;=&#39;"),
        ({"status": "DONE"}, "unknown filters[&#39;status&#39;] &#39;DONE&#39;"),
        ({"page": "x"}, "page must be a whole number"),
        (
            {"page": "0"},
            "page must be a whole number from 1 to 1,000,000,000,000,000, got &#39;0&#39;",
        ),
        ({"page": "9" * 23}, "page must be a whole number from 1 to 1,000,000,000,000,000"),
        ({"page": "9" * 5000}, "(5,000 characters)"),
        ({"per_page": "7"}, "per_page must be one of"),
        ({"per_page": "1" + "0" * 30}, "per_page must be a whole number from 1 to 500"),
        ([("tag", f"k{i}=v") for i in range(70)], "a filter may match at most 32 tags"),
        ([("tag", f"k{i}=v") for i in range(500)], "filters[&#39;tags&#39;] has 500 tags"),
        ({"tag": "k=" + "x" * 3000}, "takes 3,003 bytes"),
        ({"tag": "k:=" + "[" * 3000 + "]" * 3000}, "is not a JSON value"),
    ],
)
async def test_bad_filters_are_a_400_page(
    client: httpx.AsyncClient, params: Any, message: str
) -> None:
    response = await client.get("/", params=params)
    assert response.status_code == 400
    assert message in response.text


async def test_durations_chart_data_by_status(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    chart = embedded_json(html, "durations-data")
    assert len(chart["x"]) == 32  # every finished experiment; the running one has no duration
    assert chart["x"] == sorted(chart["x"])
    labels = {s["label"] for s in chart["series"]}
    assert labels == {"COMPLETED", "FAILED"}
    for series in chart["series"]:
        assert len(series["y"]) == len(chart["x"])
    # A name closing the script element stays inside the JSON.
    assert BREAKOUT not in html and "\\u003c/script\\u003e" in html


async def test_experiment_page(client: httpx.AsyncClient, recorded: dict[str, str]) -> None:
    response = await client.get(f"/experiments/{recorded['main']}")
    assert response.status_code == 200
    html = response.text
    assert recorded["main"] in html and "zephyr" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index(">preprocess<") < html.index(">llm<") < html.index(">cards<")
    assert '<b data-field="requests">50</b> requests' in html
    assert '<b data-field="failures">5</b> failed' in html
    assert "upstream &lt;b&gt;timeout&lt;/b&gt;" in html
    histogram = embedded_json(html, "latency-data")
    assert sum(histogram["total"]) == 50 and sum(histogram["failed"]) == 5
    assert "cards.json" in html  # the pipeline config


async def test_failed_and_running_experiment_pages(
    client: httpx.AsyncClient, recorded: dict[str, str]
) -> None:
    failed = (await client.get(f"/experiments/{recorded['breakout']}")).text
    assert "boom &lt;script&gt;" in failed and "No requests recorded" in failed
    assert BREAKOUT not in failed
    running = (await client.get(f"/experiments/{recorded['running']}")).text
    assert "running" in running and "RUNNING" in running


async def test_unknown_experiment_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/experiments/%3Cb%3Enope")
    assert response.status_code == 404
    assert "&#39;&lt;b&gt;nope&#39;" in response.text


async def test_static_assets_are_served_from_the_package(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    src = re.search(r'<script src="(/static/vendor/uPlot\.iife\.min\.js\?v=\w+)"', html)
    assert src
    script = await client.get(src.group(1))
    assert script.status_code == 200 and "uPlot" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert "immutable" in script.headers["cache-control"]
    unversioned = await client.get("/static/app.js")
    assert unversioned.headers["cache-control"] == "no-cache"
    assert (await client.get("/static/../_app.py")).status_code == 404
    assert (await client.get("/static/nothing.js")).status_code == 404


async def test_read_only_loopback_and_locked_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.post("/")).status_code == 405
    assert (await client.delete("/experiments/x")).status_code == 405
    rebound = await client.get("/", headers={"host": "evil.example"})
    assert rebound.status_code == 400


async def test_allowed_hosts_default_to_loopback(
    shared_db: Storage, recorded: dict[str, str]
) -> None:
    app = create_app(shared_db.uri)
    async with app.router.lifespan_context(app) as state:

        async def served(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=served)
        for host, code in (("127.0.0.1:8765", 200), ("localhost:8765", 200), ("example.com", 400)):
            async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
                assert (await c.get("/")).status_code == code, host


def test_host_check_parses_the_header_strictly() -> None:
    check = HostCheck(lambda *_: None, ["dash.example.org", "*.corp.example", "[fd00::7]"])
    served = [
        "localhost",
        "LOCALHOST.:8765",
        "127.0.0.2:8765",
        "127.255.255.254",
        "[::1]:80",
        "[0:0::1]",
        "[::ffff:127.0.0.1]:8765",
        "dash.example.org",
        "Dash.Example.Org.:443",
        "a.corp.example",
        "[fd00:0::7]:8765",
    ]
    refused = [
        None,
        "",
        "evil.example",
        "dash.example.org.evil.example",
        "corp.example",  # *.corp.example is its subdomains only
        "localhost.evil.example",
        "127.0.0.1.evil.example",
        "::1",  # an IPv6 address in Host must be bracketed
        "[::1",
        "[evil.example]:80",
        "localhost:80:80",
        "localhost:http",
        "localhost:",
        "128.0.0.1",
        "[fd00::8]",
    ]
    assert [h for h in served if not check.allows(h)] == []
    assert [h for h in refused if check.allows(h)] == []


@pytest.mark.parametrize("bad", ["*", "dash.example.org:8765", "http://x", "", "a b", "-x.org"])
def test_create_app_refuses_an_unusable_allowed_host(storage_uri: str, bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        create_app(storage_uri, allowed_hosts=[bad])


def test_the_host_check_cannot_be_switched_off(storage_uri: str) -> None:
    with pytest.raises(TypeError, match="cannot be switched off"):
        create_app(storage_uri, allowed_hosts=None)  # type: ignore[arg-type]


_BUILD_IN_A_COROUTINE = """
from healthchain.ui import create_app

async def main():
    create_app(sys.argv[2])
    return threading.get_ident()
"""


def test_create_app_in_a_coroutine_leaves_the_driver_unimported() -> None:
    # The driver is imported when the app starts (its lifespan opens the tracker), in a
    # worker thread: never on the loop an app is built on.
    imported, _ = import_threads(_BUILD_IN_A_COROUTINE, "asyncpg", "postgresql://u@h:1/db")
    assert not imported, "create_app imported asyncpg on the loop"


@pytest.fixture
def doomed(storage_uri: str) -> str:
    with ExperimentTracker(storage_uri) as tracker, tracker.track("doomed") as experiment_id:
        pass
    return experiment_id


async def test_storage_failure_is_a_503_page(storage_uri: str, db_path: Path, doomed: str) -> None:
    def drop_everything() -> None:  # someone wipes the schema under a running dashboard
        with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
            conn.executescript(
                "PRAGMA foreign_keys=OFF; DROP TABLE requests; DROP TABLE pipeline_components;"
                "DROP TABLE experiment_tags; DROP TABLE experiments;"
            )
        conn.close()

    async with dashboard_client(storage_uri) as c:
        assert (await c.get("/")).status_code == 200
        await anyio.to_thread.run_sync(drop_everything)
        response = await c.get("/")
        detail = await c.get(f"/experiments/{doomed}")
    assert response.status_code == 503
    assert "The experiments database failed" in response.text
    assert "no such table" in response.text
    assert detail.status_code == 503


async def test_no_password_reaches_any_page(postgres_uri: str) -> None:
    # A password with an unencoded '@' and another in a query option: the header and the
    # 503 page name the database masked. (The test server trusts local connections.)
    import asyncpg
    from sqlalchemy.engine import make_url

    secret = "s3cret-pw"
    base = make_url(postgres_uri)
    uri = (
        f"postgresql://{base.username}:pre@{secret}@{base.host}:{base.port or 5432}/"
        f"{base.database}?password=q-{secret}&sslmode=prefer"
    )
    await upgrade_database(postgres_uri)  # a reader never creates the schema
    async with dashboard_client(uri) as c:
        page = await c.get("/")
        admin = await asyncpg.connect(postgres_uri)
        try:
            await admin.execute("DROP TABLE experiment_tags, experiments CASCADE")
        finally:
            await admin.close()
        failed = await c.get("/")
    assert page.status_code == 200
    assert failed.status_code == 503 and "The experiments database failed" in failed.text
    for response in (page, failed):
        assert secret not in response.text and "pre@" not in response.text
        assert f":***@{base.host}" in response.text
        assert "password=***" in response.text
