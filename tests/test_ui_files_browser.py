"""The saved-files pages in real Chromium: at 800 px, nothing scrolls sideways."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

# The browser, its checked page, the server and the suite's blocking-call detector with
# Playwright's allowances: one home, in the dashboard's browser tests.
from test_ui_browser import anyio_backend, base_url, blockbuster, browser, page  # noqa: F401

from healthchain.tracking import ExperimentTracker

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

DEEP = "a_rather_long_folder_name_with_no_break" * 5  # no space or hyphen to wrap at


@pytest.fixture
def recorded(storage_uri: str, tmp_path: Path) -> dict[str, str]:
    """One run whose files are in a deep folder with a long name (what ``base_url`` serves)."""
    folder = tmp_path / DEEP / "0190a0b0-0000-7000-8000-000000000000"
    folder.mkdir(parents=True)
    for index in range(3):
        (folder / f"request_{index:04d}.json").write_text('{"hook": "patient-view"}\n')
        (folder / f"response_{index:04d}.json").write_text('{"cards": []}\n')
    with ExperimentTracker(storage_uri) as tracker:
        experiment_id = tracker.start_experiment("saved")
        tracker.set_files_dir(experiment_id, folder)
        tracker.end_experiment(experiment_id)
    return {"saved": experiment_id, "folder": str(folder)}


async def test_the_files_page_fits_800_px_and_opens_a_saved_file(
    page: Page,  # noqa: F811 - the imported fixture
    base_url: str,  # noqa: F811
    recorded: dict[str, str],
    tmp_path: Path,
) -> None:
    await page.set_viewport_size({"width": 800, "height": 900})
    await page.goto(f"{base_url}/experiments/{recorded['saved']}/files")
    await expect(page.locator("h1")).to_contain_text("6 files")
    await expect(page.locator(".facts")).to_contain_text(recorded["folder"])
    await expect(page.locator("table.files tbody tr")).to_have_count(6)
    width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= await page.evaluate("innerWidth")
    await page.screenshot(path=tmp_path / "files-800.png", full_page=True)

    # the link, fetched as the browser would (opening JSON in a tab makes Chromium ask
    # for a /favicon.ico the dashboard does not have)
    href = await page.locator("a", has_text="response_0002.json").get_attribute("href")
    assert href == f"/experiments/{recorded['saved']}/files/response_0002.json"
    reply = await page.request.get(base_url + href)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert await reply.json() == {"cards": []}
