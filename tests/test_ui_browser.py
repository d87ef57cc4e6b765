"""The dashboard in a real browser: Debian's Chromium driven by Playwright, served by uvicorn.

uvicorn serves on a socket bound before its thread starts, so the browser's first request
simply waits in the listen backlog: no polling for readiness. Playwright's async API runs
on the test's own event loop, under the suite's blocking-call detector like the server.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import uvicorn
from blockbuster import BlockBuster
from helpers import unavailable
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright, expect

from healthchain.tracking import ExperimentStatus, ExperimentTracker, RequestRecord
from healthchain.ui import create_app

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).is_file()  # here: a stat in the async fixture would block
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = "<script>alert(1)</script>"
PIPELINE = [
    {"name": "preprocess", "type": "function", "stage": "pre"},
    {"name": "summarize", "type": "ChatModel", "stage": "inference"},
    {"name": "cards", "type": "function", "stage": "post"},
]


# Playwright's own start-up and file output, a few blocking calls inside Playwright itself
# (locating its driver, writing screenshots); nothing of ours, and not in the server.
_PLAYWRIGHT_BLOCKING = {
    "playwright/_impl/_driver.py": {"compute_driver_executable"},
}


@pytest.fixture(autouse=True)
def blockbuster(blockbuster: BlockBuster) -> BlockBuster:
    """The suite's detector, allowing Playwright's own start-up calls."""
    for function in blockbuster.functions.values():
        for path, names in _PLAYWRIGHT_BLOCKING.items():
            function.can_block_in(path, names)
    return blockbuster


@pytest.fixture
def recorded(storage_uri: str) -> dict[str, str]:
    """A dozen runs of two models with requests; one carries a script in a tag and its name."""
    ids: dict[str, str] = {}
    now = datetime.now(UTC)
    statuses = [ExperimentStatus.COMPLETED] * 3 + [ExperimentStatus.FAILED]
    with ExperimentTracker(
        storage_uri, project_name="patient_summary", tags={"environment": "staging"}
    ) as tracker:
        for i in range(12):
            model = "zephyr" if i % 3 else "llama"
            experiment_id = tracker.start_experiment(
                f"discharge-{i:02d}", tags={"model": model, "run": i}, components=PIPELINE
            )
            tracker.log_requests(
                experiment_id,
                [
                    RequestRecord(
                        j,
                        now + timedelta(milliseconds=20 * j),
                        40.0 + (j * 37 % 23) * 3.5 + i,
                        500 if j % 9 == 4 else 200,
                        "model timeout" if j % 9 == 4 else None,
                    )
                    for j in range(40)
                ],
            )
            tracker.end_experiment(experiment_id, statuses[i % 4])
            ids[f"run{i}"] = experiment_id
        ids["xss"] = tracker.start_experiment(XSS, tags={"note": XSS}, components=PIPELINE)
        tracker.end_experiment(ids["xss"], ExperimentStatus.FAILED, error=XSS)
    return ids


@pytest.fixture
def base_url(storage_uri: str, recorded: dict[str, str]) -> Iterator[str]:
    """The dashboard served by a real uvicorn on 127.0.0.1, in a background thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(
        uvicorn.Config(create_app(storage_uri), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide here and where these fixtures are imported, so that one Chromium
    (``browser``) serves all of a module's tests; each test still gets a fresh context."""
    return "asyncio"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page that records dialogs and console errors; neither may happen."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    await context.close()
    assert dialogs == [], "a script ran and opened a dialog"
    assert errors == [], "the page logged errors (a CSP violation or a JS error)"


async def expect_chart_drawn(page: Page, selector: str) -> None:
    chart = page.locator(selector)
    await expect(chart).to_have_attribute("data-drawn", "true")
    box = await chart.locator("canvas").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100


async def test_list_filter_open_experiment(
    page: Page, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    await page.goto(base_url + "/")
    await expect(page.locator("table.experiments tbody tr")).to_have_count(13)
    await expect_chart_drawn(page, "#durations-chart")
    # One legend entry per status present, in the status colours.
    await expect(page.locator(".u-legend .u-series")).to_have_count(3)
    await page.screenshot(path=tmp_path / "list.png", full_page=True)

    await page.fill("input[name=tag]", "model=llama")
    await page.click("button[type=submit]")
    rows = page.locator("table.experiments tbody tr")
    await expect(rows).to_have_count(4)
    await expect(page.locator(".active-tags")).to_contain_text("model=llama")
    for name in ("discharge-09", "discharge-06", "discharge-03", "discharge-00"):
        await expect(rows.filter(has_text=name)).to_have_count(1)
    await page.screenshot(path=tmp_path / "filtered.png", full_page=True)

    # Clicking a tag chip adds it to the filters.
    await rows.first.locator("a.chip", has_text="run=").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("discharge-09")

    await page.click("text=discharge-09")
    await expect(page.locator("h1")).to_contain_text("discharge-09")
    await expect(page.locator(".facts")).to_contain_text(recorded["run9"])
    components = page.locator("table.components tbody tr td:nth-child(2)")
    await expect(components).to_have_text(["preprocess", "summarize", "cards"])
    await expect(page.locator(".stats")).to_contain_text("40 requests")
    await expect(page.locator("table.failures tbody tr")).to_have_count(4)
    await expect_chart_drawn(page, "#latency-chart")
    await page.screenshot(path=tmp_path / "experiment.png", full_page=True)
    assert (await anyio.Path(tmp_path / "experiment.png").stat()).st_size > 10_000


async def test_script_in_a_tag_is_shown_as_text_and_never_runs(
    page: Page, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    await page.goto(base_url + "/")
    await expect(page.locator("table.experiments a.chip", has_text=XSS)).to_have_count(1)
    await expect(page.locator("a.name", has_text=XSS)).to_have_count(1)

    await page.locator("table.experiments a.chip", has_text=XSS).click()
    await expect(page.locator("table.experiments tbody tr")).to_have_count(1)
    await expect(page.locator("input[type=hidden][name=tag]")).to_have_value(f"note={XSS}")

    await page.locator("a.name", has_text=XSS).click()
    await expect(page.locator("h1")).to_contain_text(XSS)
    await expect(page.locator("table.kv tr", has_text="note").locator("td")).to_have_text(XSS)
    await expect(page.locator("pre.error-text")).to_have_text(XSS)
    # The only scripts on the page are the dashboard's own four files (uPlot, the list's,
    # the metric charts', the live updates') and the JSON data.
    sources = await page.eval_on_selector_all("script", "els => els.map(e => e.src || e.type)")
    assert (
        sources
        == [
            *[s for s in sources if s.startswith(base_url + "/static/")],
        ]
        and len(sources) == 4
    )
    await page.screenshot(path=tmp_path / "xss.png", full_page=True)
