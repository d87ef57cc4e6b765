"""The dashboard's list page with metrics and params: columns, sorting by header links,
metric and param filters, stale runs, short ids and picking runs to compare.

In-process through ``httpx.ASGITransport``, on a SQLite file and on the real PostgreSQL
server (``shared_storage``: the runs are recorded once per backend).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from helpers.dashboard import dashboard_client
from helpers.shared import kept_read_only
from helpers.storage import Storage

from healthchain.tracking import ExperimentTracker
from healthchain.ui._list import AUTO_METRIC_COLUMNS

pytestmark = pytest.mark.anyio

# name: (acc, loss, model); acc and loss on every eval run, "rare" on one only
EVALS = {
    "eval-a": (0.91, 0.30, "gpt"),
    "eval-b": (0.42, 0.90, "llama"),
    "eval-c": (0.77, 0.45, "gpt"),
    "eval-d": (0.55, 0.60, "llama"),
}


@pytest.fixture(scope="module")
def listed(shared_storage: Storage) -> Iterator[dict[str, str]]:
    """Four evaluated runs, two sandbox runs, one run that stopped beating its heart.

    Recorded once per backend for the module, whose tests only read them (checked). The
    writer's heartbeat interval is an hour, so its one beat at start is all it writes
    while the module runs, and the planted stale beat stays as planted.
    """
    ids: dict[str, str] = {}
    with ExperimentTracker(
        shared_storage.uri, project_name="evals", heartbeat_interval=3600
    ) as tracker:
        for name, (acc, loss, model) in EVALS.items():
            ids[name] = run = tracker.start_experiment(name, tags={"suite": "nightly"})
            tracker.log_metrics(run, {"acc": acc, "loss": loss, "f1": acc - 0.1})
            tracker.log_params(run, {"model": model, "epochs": 3})
            tracker.end_experiment(run)
        tracker.log_metrics(ids["eval-a"], {"rare": 1.5})
        tracker.log_params(ids["eval-a"], {"seed": 7})
        for name, count, p95 in (("sandbox-1", 1200, 85.25), ("sandbox-2", 40, 12.5)):
            ids[name] = run = tracker.start_experiment(name)
            tracker.log_metrics(
                run, {"requests": count, "latency_p95_ms": p95, "latency_p50_ms": p95 / 2}
            )
            tracker.end_experiment(run)
        ids["died"] = tracker.start_experiment("died-mid-run")
        ids["alive"] = tracker.start_experiment("still-beating")
        shared_storage.set_heartbeat(ids["died"], beat=datetime.now(UTC) - timedelta(hours=1))
        # ids made in the same millisecond share more than 8 characters
        ids.update({f"short:{n}": s for n, s in tracker.abbreviate_ids([ids["eval-c"]]).items()})
        with kept_read_only(shared_storage):
            yield ids


@pytest.fixture
async def client(
    shared_storage: Storage, listed: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with dashboard_client(shared_storage.uri) as c:
        yield c


def names_in(page: str) -> list[str]:
    return re.findall(r'class="name" href="[^"]+">([^<]*)</a>', page)


def headers_in(page: str) -> list[str]:
    thead = page[page.index("<thead>") : page.index("</thead>")]
    return [
        re.sub(r"<[^>]+>|[▲▼]", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", thead)
    ]


def row_of(page: str, name: str) -> list[str]:
    """The cells' text of the row whose name is ``name``."""
    row = next(r for r in re.findall(r"<tr>.*?</tr>", page) if f">{name}</a>" in r)
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row)
    ]


def cell(page: str, name: str, header: str) -> str:
    return row_of(page, name)[headers_in(page).index(header)]


def sort_link(page: str, header: str) -> str:
    thead = page[page.index("<thead>") : page.index("</thead>")]
    match = re.search(rf'<a class="sort" href="([^"]+)">{re.escape(header)}[ ▲▼]*</a>', thead)
    assert match, f"no sort link on {header!r}"
    return html.unescape(match.group(1))


async def test_metric_param_and_request_columns(
    client: httpx.AsyncClient, listed: dict[str, str]
) -> None:
    page = (await client.get("/")).text
    headers = headers_in(page)
    # The keys most rows have, most first then by name; requests and p95 have their own.
    assert headers == [
        "", "Name", "Status", "Project", "Started (UTC)", "Duration", "Requests", "p95 ms",
        "acc", "f1", "loss", "latency_p50_ms", "epochs", "model", "Tags", "ID",
    ]  # fmt: skip
    assert len(headers[8:12]) == AUTO_METRIC_COLUMNS
    assert cell(page, "eval-a", "acc") == "0.91"
    assert cell(page, "eval-b", "model") == "llama"
    assert cell(page, "eval-b", "epochs") == "3"
    assert cell(page, "sandbox-1", "Requests") == "1200"
    assert cell(page, "sandbox-1", "p95 ms") == "85.25"
    assert cell(page, "sandbox-2", "acc") == ""  # no such metric: an empty cell
    assert cell(page, "eval-a", "Requests") == ""
    # A page with no sandbox run has no Requests or p95 column.
    page = (await client.get("/", params={"metric": "acc>0"})).text
    assert headers_in(page)[5:8] == ["Duration", "acc", "f1"]

    # Picked columns come first, before the most common ones; the rest stay.
    page = (await client.get("/", params={"columns": "metrics.rare,params.seed"})).text
    headers = headers_in(page)
    assert headers[8:13] == ["rare", "acc", "f1", "loss", "latency_p50_ms"]
    assert headers[13:16] == ["seed", "epochs", "model"]
    assert cell(page, "eval-a", "rare") == "1.5"
    assert cell(page, "eval-a", "seed") == "7"
    # ...and every link of the page keeps them.
    assert "columns=metrics.rare%2Cparams.seed" in sort_link(page, "acc").replace(",", "%2C")
    assert 'name="columns" value="metrics.rare,params.seed"' in page


async def test_sorting_by_clicking_headers(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    # Newest first by default, shown on the Started header.
    assert 'aria-sort="descending"' in page.split("Started (UTC)")[0].rsplit("<th", 1)[1]
    evals = [n for n in names_in(page) if n.startswith("eval")]
    assert evals == ["eval-d", "eval-c", "eval-b", "eval-a"]

    # The first click on a metric: largest first; runs without it come last.
    url = sort_link(page, "acc")
    assert url == "/?sort=-metrics.acc"
    page = (await client.get(url)).text
    assert names_in(page)[:4] == ["eval-a", "eval-c", "eval-d", "eval-b"]
    assert 'aria-sort="descending" title="sorted by -metrics.acc"' in page
    # The second click: smallest first.
    url = sort_link(page, "acc")
    assert url == "/?sort=metrics.acc"
    page = (await client.get(url)).text
    assert names_in(page)[:4] == ["eval-b", "eval-d", "eval-c", "eval-a"]

    page = (await client.get(sort_link(page, "Name"))).text
    assert names_in(page) == sorted(names_in(page))
    page = (await client.get(sort_link(page, "p95 ms"))).text
    assert names_in(page)[:2] == ["sandbox-1", "sandbox-2"]
    page = (await client.get(sort_link(page, "Requests"))).text
    assert names_in(page)[:2] == ["sandbox-1", "sandbox-2"]
    page = (await client.get(sort_link(page, "Duration"))).text
    assert names_in(page)[-2:] == ["still-beating", "died-mid-run"]  # running: no duration
    # Back to the default order: the link carries no sort at all.
    page = (await client.get("/?sort=start_time")).text
    assert sort_link(page, "Started (UTC)") == "/"


async def test_pages_keep_the_sort_and_filters(client: httpx.AsyncClient) -> None:
    query = {"sort": "-metrics.acc", "per_page": 25, "metric": "acc>0", "param": "epochs=3"}
    page = (await client.get("/", params=query)).text
    assert names_in(page) == ["eval-a", "eval-c", "eval-d", "eval-b"]
    link = sort_link(page, "loss")
    assert link == "/?metric=acc%3E0&param=epochs%3D3&sort=-metrics.loss&per_page=25"
    page = (await client.get(link)).text
    assert names_in(page) == ["eval-b", "eval-d", "eval-c", "eval-a"]
    # The filter form carries them on as hidden fields.
    for field in ('name="metric" value="acc&gt;0"', 'name="param" value="epochs=3"'):
        assert f'<input type="hidden" {field}>' in page
    assert '<input type="hidden" name="sort" value="-metrics.loss">' in page


async def test_metric_and_param_filters(client: httpx.AsyncClient) -> None:
    page = (await client.get("/", params={"metric": "acc>0.5"})).text
    assert sorted(names_in(page)) == ["eval-a", "eval-c", "eval-d"]
    # Repeatable, and combined with a param: every one must hold.
    query = [("metric", "acc>0.5"), ("metric", "loss<=0.45"), ("param", "model=gpt")]
    page = (await client.get("/", params=query)).text
    assert sorted(names_in(page)) == ["eval-a", "eval-c"]
    page = (await client.get("/", params=[*query, ("param", "seed=7")])).text
    assert names_in(page) == ["eval-a"]
    # Each filter is a chip whose link drops it and keeps the others.
    chips = re.findall(r'<a class="chip active (\w+)-filter" href="([^"]+)"', page)
    assert [kind for kind, _ in chips] == ["metric", "metric", "param", "param"]
    without_seed = html.unescape(chips[3][1])
    assert without_seed == "/?metric=acc%3E0.5&metric=loss%3C%3D0.45&param=model%3Dgpt"
    assert sorted(names_in((await client.get(without_seed)).text)) == ["eval-a", "eval-c"]
    dropped_all = [html.unescape(url) for _, url in chips]
    assert "/?metric=loss%3C%3D0.45&param=model%3Dgpt&param=seed%3D7" in dropped_all

    page = (await client.get("/", params={"metric": "acc>0.95"})).text
    assert names_in(page) == [] and "No experiments match." in page


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"sort": "accuracy"}, "cannot sort by 'accuracy'"),
        ({"sort": "-metrics."}, "cannot sort by '-metrics.'"),
        ({"sort": "params.model"}, "cannot sort by 'params.model'"),
        ({"sort": "metrics.a\x00b"}, "'metrics.a\\x00b'"),  # refused by the tracker
        ({"metric": "acc>>0.5"}, "'acc>>0.5'"),
        ({"metric": "acc"}, "metric filter 'acc' has no operator"),
        ({"metric": "acc>high"}, "'high', which is not a number"),
        ({"param": "model"}, "param filter 'model' has no '='"),
        ({"columns": "acc"}, "unknown column 'acc'; name columns as metrics.<key>"),
        ({"columns": "tags.model"}, "unknown column 'tags.model'"),
        ({"columns": ",".join(f"metrics.m{i}" for i in range(17))}, "17 columns were picked"),
    ],
)
async def test_bad_sort_filter_or_column_is_a_400_page_naming_it(
    client: httpx.AsyncClient, query: dict[str, str], named: str
) -> None:
    response = await client.get("/", params=query)
    assert response.status_code == 400
    banner = re.search(r'<p class="error-banner" role="alert">(.*?)</p>', response.text, re.S)
    assert banner and named in html.unescape(banner.group(1))
    assert names_in(response.text) == []
    # The page still offers the form, with what was typed kept where it can be.
    assert '<form class="filters card"' in response.text


async def test_a_run_that_missed_three_heartbeats_is_marked_stale(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/")).text
    assert cell(page, "died-mid-run", "Status") == "RUNNING STALE"
    assert cell(page, "still-beating", "Status") == "RUNNING"
    assert cell(page, "eval-a", "Status") == "COMPLETED"


async def test_short_ids_shown_whole_ids_linked_and_runs_picked_to_compare(
    client: httpx.AsyncClient, listed: dict[str, str]
) -> None:
    page = (await client.get("/")).text
    run = listed["eval-c"]
    short = listed[f"short:{run}"]
    assert len(short) >= 8 and run.startswith(short) and short != run
    assert cell(page, "eval-c", "ID") == short
    assert f'<a class="id" href="/experiments/{run}" title="{run}">{short}</a>' in page
    assert f'<a class="name" href="/experiments/{run}">eval-c</a>' in page
    # A checkbox per row, bound to the compare form: ticked ones are sent as ?id=...&id=...
    assert '<form id="compare" class="compare-bar" method="get" action="/compare">' in page
    boxes = re.findall(r'<input type="checkbox" name="id" value="([^"]+)" form="compare"', page)
    assert sorted(boxes) == sorted(v for k, v in listed.items() if not k.startswith("short:"))
