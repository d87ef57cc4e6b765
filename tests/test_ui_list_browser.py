# ruff: noqa: F811 (the shared fixtures, imported, are parameters of the tests)
"""The list page in a real browser: sort by a header, filter by a metric, tick runs and
compare them; at 800 px wide no sideways scrolling, whole tag chips and readable 24-hour
UTC chart labels.

Served and driven as in ``test_ui_browser.py``, whose fixtures these tests share; its
``base_url`` serves this module's ``recorded`` runs.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Route, expect
from test_ui_browser import (  # noqa: F401 (fixtures)
    anyio_backend,
    base_url,
    blockbuster,
    browser,
    expect_chart_drawn,
    page,
)

from healthchain.tracking import ExperimentTracker

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

LONG_TAG = "a-very-long-unbroken-tag-value-that-is-wider-than-its-cell-" * 2


@pytest.fixture
def recorded(storage_uri: str, db_path: Path) -> dict[str, str]:
    """Twelve evaluated runs started a few hours apart over three days."""
    ids: dict[str, str] = {}
    with ExperimentTracker(storage_uri, project_name="evals") as tracker:
        for i in range(12):
            run = tracker.start_experiment(
                f"eval-{i:02d}",
                tags={"suite": "nightly", "model": f"model-{i % 3}", "note": LONG_TAG},
            )
            tracker.log_metrics(run, {"acc": i / 12, "loss": 1 - i / 12, "f1": (i % 5) / 5})
            tracker.log_metrics(run, {"requests": 100 + i, "latency_p95_ms": 40.0 + i})
            tracker.log_params(run, {"model": f"model-{i % 3}", "temperature": 0.2})
            tracker.end_experiment(run)
            ids[f"eval-{i:02d}"] = run
    # Spread the start times (the tracker stamps "now") so the chart's axis spans days.
    first = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        for i, run in enumerate(ids.values()):
            start = first + timedelta(hours=6 * i)
            conn.execute(
                "UPDATE experiments SET start_time = ?, end_time = ? WHERE id = ?",
                (
                    start.replace(tzinfo=None).isoformat(" "),
                    (start + timedelta(seconds=30 + i)).replace(tzinfo=None).isoformat(" "),
                    run,
                ),
            )
        conn.commit()
    return ids


def names(page: Page) -> Any:
    return page.locator("table.experiments tbody a.name")


async def test_sort_filter_and_pick_runs_to_compare(
    page: Page, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    await page.goto(base_url + "/")
    await expect(names(page)).to_have_count(12)
    headers = page.locator("table.experiments thead th")
    await expect(headers.filter(has_text="acc")).to_have_count(1)
    await expect(headers.filter(has_text="Requests")).to_have_count(1)

    await page.click("thead a.sort:text-is('acc')")
    await expect(page).to_have_url(re.compile(r"\?sort=-metrics\.acc$"))
    await expect(names(page).first).to_have_text("eval-11")
    await expect(page.locator("th[aria-sort=descending]")).to_contain_text("acc ▼")
    await page.click("thead a.sort:has-text('acc')")
    await expect(names(page).first).to_have_text("eval-00")

    await page.fill("input[name=metric]", "acc>0.5")
    await page.fill("input[name=param]", "model=model-1")
    await page.click("form.filters button[type=submit]")
    # acc > 0.5: eval-07..11; of those model-1: eval-07 and eval-10; still in acc order.
    await expect(names(page)).to_have_text(["eval-07", "eval-10"])
    await expect(page.locator("a.metric-filter")).to_contain_text("acc>0.5")
    await page.screenshot(path=tmp_path / "list-filtered.png", full_page=True)

    submitted: list[str] = []

    async def compare(route: Route) -> None:
        # The compare page is another module's; here only what the browser sends counts.
        submitted.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<h1>compare</h1>")

    await page.route(re.compile(r".*/compare(\?.*)?$"), compare)
    for name in ("eval-07", "eval-10"):
        row = page.locator("table.experiments tbody tr", has_text=name)
        await row.locator("input[type=checkbox]").check()
    await page.click("form#compare button")
    await expect(page.locator("h1")).to_have_text("compare")
    wanted = f"{base_url}/compare?id={recorded['eval-07']}&id={recorded['eval-10']}"
    assert submitted == [wanted]


async def test_fits_800_px_with_whole_chips_and_24_hour_utc_axis(
    browser: Browser, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    context = await browser.new_context(viewport={"width": 800, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(base_url + "/?columns=params.temperature")
        await expect(names(page)).to_have_count(12)
        await expect_chart_drawn(page, "#durations-chart")
        await page.screenshot(path=tmp_path / "list-800.png", full_page=True)
        widths = await page.evaluate(
            """() => ({
                page: document.scrollingElement.scrollWidth, window: innerWidth,
                table: document.querySelector('.table-scroll').scrollWidth,
                box: document.querySelector('.table-scroll').clientWidth })"""
        )
        assert widths["page"] <= widths["window"], widths
        assert widths["table"] <= widths["box"], widths  # the table fits: no inner scroller

        # Every chip is one line: as tall as the shortest chip, however long its text.
        heights = await page.eval_on_selector_all(
            "table.experiments a.chip", "els => els.map(e => e.getBoundingClientRect().height)"
        )
        assert len(heights) == 36 and max(heights) == min(heights)
        long_chip = page.locator("a.chip", has_text="note=").first
        assert LONG_TAG in (await long_chip.get_attribute("title") or "")

        # The labels are drawn on a canvas: read them where uPlot keeps them (the vendored,
        # pinned 1.6.32's axis._splits and ._values) and measure them as drawn.
        labels = await page.evaluate(
            """() => {
                const u = document.querySelector('#durations-chart').uplot;
                const axis = u.axes[0];
                u.ctx.font = axis.font[0];
                return axis._values.map((text, i) => {
                    const x = u.valToPos(axis._splits[i], 'x');
                    const w = u.ctx.measureText(text).width / devicePixelRatio;
                    return {text, left: x - w / 2, right: x + w / 2};
                });
            }"""
        )
        assert len(labels) >= 2
        texts = [label["text"] for label in labels]
        assert all(re.fullmatch(r"\d\d-\d\d [0-2]\d:[0-5]\d", t) for t in texts), texts
        for before, after in itertools.pairwise(labels):
            assert before["right"] < after["left"], (before, after)
        legend_x = page.locator(".u-legend .u-series").first.locator(".u-value")
        await page.locator("#durations-chart .u-over").hover()
        await expect(legend_x).to_have_text(re.compile(r"^2026-1[12]-\d\d [0-2]\d:\d\d:\d\d$"))
    finally:
        await context.close()
    assert errors == []
