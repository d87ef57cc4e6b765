"""The experiment and compare pages in Debian's Chromium: charts drawn with data, a
RUNNING run's page following it live until it ends, and 800 px without sideways scroll
or overlapping chart labels.

The server, browser and page fixtures are ``test_ui_browser``'s; ``recorded`` here gives
the server runs with metrics, params and scores.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from playwright.async_api import Page, expect
from test_ui_browser import XSS, anyio_backend, base_url, blockbuster, browser, page

from healthchain.tracking import AsyncExperimentTracker, ExperimentTracker, RequestRecord
from healthchain.ui._experiment import LIVE_POLL_MS

__all__ = ["anyio_backend", "base_url", "blockbuster", "browser", "page"]  # fixtures used by name

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

NARROW = {"width": 800, "height": 900}

# For each drawn chart: are the tick labels of each axis clear of their neighbours?
# uPlot draws them on its canvas, so measure them as it does.
LABELS_OVERLAP = """els => els.filter(el => el.uplot).flatMap(el => {
  const u = el.uplot, ctx = u.ctx, clashes = [];
  u.axes.forEach((axis, i) => {
    if (!axis._values || !axis._splits) return;
    ctx.font = axis.font[0];
    const horizontal = axis.side % 2 === 0, scale = u.series[0].scale || "x";
    const spans = axis._splits.map((v, j) => {
      const text = axis._values[j];
      if (text == null || text === "") return null;
      const at = u.valToPos(v, horizontal ? "x" : (axis.scale || "y"));
      const size = horizontal ? ctx.measureText(String(text)).width : axis.font[1] || 12;
      return [at - size / 2, at + size / 2, String(text)];
    }).filter(Boolean).sort((a, b) => a[0] - b[0]);
    for (let j = 1; j < spans.length; j++)
      if (spans[j][0] < spans[j - 1][1])
        clashes.push(el.id + ": " + spans[j - 1][2] + " / " + spans[j][2]);
  });
  return clashes;
})"""


@pytest.fixture
def recorded(storage_uri: str) -> dict[str, str]:
    """Three finished runs with params, metric histories and scored requests."""
    ids: dict[str, str] = {}
    now = datetime.now(UTC)
    with ExperimentTracker(storage_uri, project_name="patient_summary") as tracker:
        for n in range(3):
            run = tracker.start_experiment(
                f"discharge-{n}-with-a-rather-long-name",
                tags={"model": "llama" if n else "zephyr", "note": XSS, "long": "x" * 60},
                pipeline_config={"template": "cards.json", "temperature": n / 10},
            )
            tracker.log_params(run, {"lr": 10.0**-n, "batch": 32, "prompt": "Summarise " * 12})
            for step in range(60):
                tracker.log_metrics(
                    run,
                    {
                        "acc": 0.5 + n / 20 + math.sin(step / 5) / 10,
                        "train_loss": 2.0 / (step + 1) + n / 10,
                    },
                    step=step * 1000,
                )
            tracker.log_requests(
                run,
                [
                    RequestRecord(
                        j,
                        now + timedelta(milliseconds=j),
                        40.0 + (j * 37 % 23) * 3.5 + 10 * n,
                        200,
                        scores={"f1": (j % 10) / 10, "rouge_l": 0.4 + (j % 7) / 20},
                    )
                    for j in range(80)
                ],
            )
            tracker.end_experiment(run)
            ids[f"run{n}"] = run
    return ids


async def expect_drawn(page: Page, selector: str) -> None:
    chart = page.locator(selector)
    await expect(chart).to_have_attribute("data-drawn", "true")
    box = await chart.locator("canvas").bounding_box()
    assert box is not None and box["width"] > 150 and box["height"] > 100


async def check_fits(page: Page, tmp_path: Path, name: str) -> None:
    """No sideways scroll, no chart's tick labels on top of each other; a screenshot."""
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= await page.evaluate("innerWidth"), f"{name} scrolls sideways"
    clashes = await page.eval_on_selector_all("[data-drawn=true]", LABELS_OVERLAP)
    assert clashes == []
    await page.screenshot(path=tmp_path / f"{name}.png", full_page=True)


async def test_experiment_page_draws_a_chart_per_metric_and_scores(
    page: Page, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    await page.goto(f"{base_url}/experiments/{recorded['run1']}")
    await expect(page.locator("table.params th")).to_have_text(["batch", "lr", "prompt"])
    await expect(page.locator("table.metrics th")).to_have_text(["acc", "train_loss"])
    await expect(page.locator("figure.metric-chart figcaption")).to_have_text(["acc", "train_loss"])
    await expect_drawn(page, "#metric-chart-1")
    await expect_drawn(page, "#metric-chart-2")
    await expect_drawn(page, "#scores-chart")
    await expect_drawn(page, "#latency-chart")
    await expect(page.locator("table.scores tbody tr td:first-child")).to_have_text(
        ["f1", "rouge_l"]
    )
    # The chart holds every one of the 60 steps.
    points = await page.eval_on_selector("#metric-chart-1", "el => el.uplot.data[0].length")
    assert points == 60
    await check_fits(page, tmp_path, "experiment-1280")
    await page.set_viewport_size(NARROW)
    await check_fits(page, tmp_path, "experiment-800")


async def test_compare_page_at_800_px(
    page: Page, base_url: str, recorded: dict[str, str], tmp_path: Path
) -> None:
    await page.set_viewport_size(NARROW)
    ids = "&".join(f"id={recorded[f'run{n}']}" for n in range(3))
    await page.goto(f"{base_url}/compare?{ids}")
    await expect(page.locator("h1")).to_have_text("Compare 3 runs")
    await expect(page.locator("table.compare.params tr.differs th")).to_have_text(["lr ≠"])
    best = page.locator("table.compare.metrics td.best")
    # acc: the highest is best (run 2's); train_loss: the lowest (run 0's).
    await expect(best).to_have_count(2)
    marked = await best.evaluate_all(
        "cells => cells.map(c => [c.parentElement.cells[0].textContent, c.cellIndex])"
    )
    assert marked == [["acc", 3], ["train_loss ↓", 1]]
    await expect_drawn(page, "#metric-chart-1")
    await expect_drawn(page, "#latency-overlay")
    series = await page.eval_on_selector("#metric-chart-1", "el => el.uplot.series.length")
    assert series == 4  # the step axis and one line per run
    await check_fits(page, tmp_path, "compare-800")


async def test_a_running_run_page_updates_itself_and_stops_when_it_ends(
    page: Page, base_url: str, storage_uri: str, tmp_path: Path
) -> None:
    lives: list[str] = []
    page.on("request", lambda r: lives.append(r.url) if r.url.endswith("/live") else None)
    async with AsyncExperimentTracker(storage_uri) as tracker:
        run = await tracker.start_experiment("live-run")
        await page.goto(f"{base_url}/experiments/{run}")
        await expect(page.locator("#experiment")).to_have_attribute("data-polling", "active")
        await expect(page.locator("[data-field=no-metrics]")).to_be_visible()
        elapsed = await page.locator("[data-field=elapsed]").text_content()

        await tracker.log_metric(run, "acc", 0.75)
        await tracker.log_requests(
            run, [RequestRecord(i, datetime.now(UTC), 12.0, 200) for i in range(3)]
        )
        await expect(page.locator("table.metrics tr[data-metric=acc] td")).to_have_text("0.75")
        await expect(page.locator("[data-field=no-metrics]")).to_be_hidden()
        await expect(page.locator("[data-field=requests]")).to_have_text("3")
        await expect(page.locator("[data-field=p95]")).to_have_text("12.0")
        await expect(page.locator("[data-field=no-requests]")).to_contain_text("arriving")
        await expect(page.locator("[data-field=elapsed]")).not_to_have_text(elapsed or "")
        await page.screenshot(path=tmp_path / "live-running.png", full_page=True)

        await tracker.end_experiment(run)
        await expect(page.locator("[data-field=status]")).to_have_text("COMPLETED")
        await expect(page.locator("#experiment")).to_have_attribute("data-polling", "stopped")
        await expect(page.locator("[data-field=live-note]")).to_contain_text("ended")
    asked = len(lives)
    # Three poll intervals later, no request more: the page stopped asking.
    await anyio.sleep(3 * LIVE_POLL_MS / 1000)
    assert len(lives) == asked >= 2
    await page.screenshot(path=tmp_path / "live-ended.png", full_page=True)
