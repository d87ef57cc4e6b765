"""The dashboard's saved-files routes: only regular files inside the recorded folder."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.to_thread
import httpx
import pytest
from helpers.asgi import raw_request, response_parts
from helpers.dashboard import dashboard_client
from helpers.storage import Storage

from healthchain.tracking import ExperimentTracker
from healthchain.ui import create_app
from healthchain.ui._files import FILES_PER_PAGE, MAX_FILE_BYTES

pytestmark = pytest.mark.anyio

SECRET = b'{"secret": "outside the folder"}\n'
REQUEST = b'{\n  "hook": "patient-view"\n}\n'
NOTES = b"<script>alert(1)</script>\n"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A run's folder as the sandbox leaves it, plus what must never be served from it."""
    (tmp_path / "secret.json").write_bytes(SECRET)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "inner.json").write_bytes(SECRET)
    folder = tmp_path / "out" / "run"
    folder.mkdir(parents=True)
    (folder / "request_0000.json").write_bytes(REQUEST)
    (folder / "response_0000.json").write_bytes(b'{"cards": []}\n')
    (folder / "notes.txt").write_bytes(NOTES)
    (folder / ".response_0001.json.abc.tmp").write_bytes(b'{"half')  # being written
    (folder / "outside.json").symlink_to(tmp_path / "secret.json")
    (folder / "outside-dir").symlink_to(tmp_path / "elsewhere")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.json").write_bytes(SECRET)
    os.mkfifo(folder / "pipe.json")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "socket.json"))
    return folder


def _record(storage: Storage, files_dir: Path | str | None) -> tuple[str, str]:
    with ExperimentTracker(storage.uri) as tracker:
        with_files = tracker.start_experiment("with files")
        without = tracker.start_experiment("without files")
        if files_dir is not None:
            tracker.set_files_dir(with_files, files_dir)
        tracker.end_experiment(with_files)
        tracker.end_experiment(without)
    return with_files, without


async def record(storage: Storage, files_dir: Path | str | None) -> tuple[str, str]:
    """An experiment whose files are in ``files_dir`` and one without files."""
    return await anyio.to_thread.run_sync(_record, storage, files_dir)


async def files_pages(
    storage: Storage, files_dir: Path, *suffixes: str
) -> tuple[str, list[httpx.Response]]:
    """The id of an experiment whose files are in ``files_dir`` (:func:`record`), and the
    dashboard's answers to ``/experiments/<id>/files<suffix>`` for each suffix, in order."""
    experiment_id, _ = await record(storage, files_dir)
    async with dashboard_client(storage.uri) as client:
        pages = [await client.get(f"/experiments/{experiment_id}/files{s}") for s in suffixes]
    return experiment_id, pages


@asynccontextmanager
async def raw_client(storage_uri: str) -> AsyncIterator[Any]:
    """``get(raw_path)``: the path sent exactly as given, ``..`` and all, which httpx
    would normalise away before sending."""
    app = create_app(storage_uri, allowed_hosts=["testserver"])
    async with app.router.lifespan_context(app) as state:

        async def get(raw_path: bytes) -> tuple[int, dict[str, str], bytes]:
            headers = [(b"host", b"testserver")]
            sent = await raw_request(app, "GET", raw_path, headers=headers, state=dict(state or {}))
            return response_parts(sent)

        yield get


async def test_the_listing_shows_the_regular_files_inside_the_folder(
    any_storage: Storage, saved: Path
) -> None:
    experiment_id, (page,) = await files_pages(any_storage, saved, "")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    text = page.text
    assert "3 files" in text
    assert str(saved) in text
    for name in ("notes.txt", "request_0000.json", "response_0000.json"):
        assert f'href="/experiments/{experiment_id}/files/{name}"' in text
    assert text.index("notes.txt") < text.index("request_0000.json") < text.index("response_0")
    for hidden in ("outside", "sub", "pipe.json", "socket.json", ".response_0001"):
        assert hidden not in text
    assert f">{len(REQUEST):,}<" in text  # its size


@pytest.mark.parametrize(
    ("name", "content", "content_type", "disposition"),
    [
        ("request_0000.json", REQUEST, "application/json", None),
        ("notes.txt", NOTES, "text/plain; charset=utf-8", 'attachment; filename="notes.txt"'),
    ],
    ids=["json", "download"],
)
async def test_a_json_file_is_served_as_json_and_anything_else_as_a_download(
    any_storage: Storage,
    saved: Path,
    name: str,
    content: bytes,
    content_type: str,
    disposition: str | None,
) -> None:
    _, (page,) = await files_pages(any_storage, saved, f"/{name}")
    assert page.status_code == 200
    assert page.content == content
    assert page.headers["content-type"] == content_type
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers.get("content-disposition") == disposition
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize(
    "name",
    [
        b"../secret.json",
        b"../../secret.json",
        b"..%2Fsecret.json",
        b"%2e%2e%2fsecret.json",
        b"%2E%2E/secret.json",
        b"..",
        b"%2e%2e",
        b"..%5Csecret.json",  # a backslash
        b"%2F" + str(Path.cwd()).encode() + b"/pyproject.toml",  # an absolute name
        b"/etc/hostname",
        b"%2Fetc%2Fhostname",
        b"outside.json",  # a symlink to a file outside
        b"outside-dir/inner.json",
        b"outside-dir%2Finner.json",
        b"sub/inner.json",
        b"sub",
        b"pipe.json",  # a FIFO: never opened for reading
        b"socket.json",
        b".response_0001.json.abc.tmp",
        b"request_0000.json%00.txt",
        b"missing.json",
    ],
)
async def test_nothing_outside_the_folder_or_not_a_saved_file_is_served(
    any_storage: Storage, saved: Path, name: bytes
) -> None:
    experiment_id, _ = await record(any_storage, saved)
    async with raw_client(any_storage.uri) as get:
        status, headers, body = await get(f"/experiments/{experiment_id}/files/".encode() + name)
    assert status == 404
    assert b"outside the folder" not in body and b"[project]" not in body
    if "/" not in unquote(name.decode()):  # one path component: our page, saying so
        assert b"there is no readable saved file" in body
    assert not headers.get("content-type", "").startswith("application/json")


async def test_the_file_routes_are_read_only(any_storage: Storage, saved: Path) -> None:
    experiment_id, _ = await record(any_storage, saved)
    async with dashboard_client(any_storage.uri) as client:
        for url in (f"/experiments/{experiment_id}/files", f"/experiments/{experiment_id}/files/a"):
            for method in ("POST", "PUT", "DELETE"):
                assert (await client.request(method, url)).status_code == 405
    assert await anyio.Path(saved / "request_0000.json").read_bytes() == REQUEST


async def test_a_folder_that_no_longer_exists_is_a_404_naming_it(
    any_storage: Storage, tmp_path: Path
) -> None:
    gone = tmp_path / "moved-away"
    _, pages = await files_pages(any_storage, gone, "", "/request_0000.json")
    for page in pages:
        assert page.status_code == 404
        assert "Saved files not found" in page.text
        assert f"the folder &#39;{gone}&#39; recorded for this run no longer exists" in page.text


async def test_an_unreadable_folder_is_a_500_page_saying_why(
    any_storage: Storage, tmp_path: Path
) -> None:
    loop = tmp_path / "loop"
    await anyio.Path(loop).symlink_to(loop)
    experiment_id, _ = await record(any_storage, tmp_path)
    # recorded as it was when the run ended; since then it became a symlink to itself
    update = "UPDATE experiments SET files_dir = ? WHERE id = ?"
    await anyio.to_thread.run_sync(any_storage.query, update, str(loop), experiment_id)
    async with dashboard_client(any_storage.uri) as client:
        page = await client.get(f"/experiments/{experiment_id}/files")
    assert page.status_code == 500
    assert (
        f"the folder &#39;{loop}&#39; recorded for this run cannot be read: Too many levels of "
        "symbolic links"
    ) in page.text


async def test_an_experiment_without_files_and_an_unknown_id_are_404_pages(
    any_storage: Storage, saved: Path
) -> None:
    _, without = await record(any_storage, saved)
    unknown = str(uuid.uuid4())
    async with dashboard_client(any_storage.uri) as client:
        for suffix in ("", "/request_0000.json"):
            page = await client.get(f"/experiments/{without}/files{suffix}")
            assert page.status_code == 404
            assert "No saved files" in page.text
            assert f"experiment &#39;{without}&#39; has no saved requests" in page.text
            page = await client.get(f"/experiments/{unknown}/files{suffix}")
            assert page.status_code == 404
            assert "Experiment not found" in page.text
            assert unknown in page.text


async def test_a_file_too_large_to_serve_is_named_with_where_it_is(
    any_storage: Storage, saved: Path
) -> None:
    async with await anyio.open_file(saved / "huge.json", "wb") as file:
        await file.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    _, (page,) = await files_pages(any_storage, saved, "/huge.json")
    assert page.status_code == 413
    assert f"&#39;huge.json&#39; is {MAX_FILE_BYTES + 1:,} bytes, over the {MAX_FILE_BYTES:,}" in (
        page.text
    )


async def test_a_long_listing_is_paged(any_storage: Storage, tmp_path: Path) -> None:
    folder = tmp_path / "many"

    def make() -> None:
        folder.mkdir()
        for index in range(FILES_PER_PAGE + 1):
            (folder / f"request_{index:04d}.json").write_bytes(b"{}")

    await anyio.to_thread.run_sync(make)
    bad_pages = [f"?page={page}" for page in ("0", "-1", "x", "9" * 50)]
    _, (first, second, *bad) = await files_pages(any_storage, folder, "", "?page=2", *bad_pages)
    assert f"{FILES_PER_PAGE + 1:,} files" in first.text
    assert f"request_{FILES_PER_PAGE - 1:04d}.json" in first.text
    assert f"request_{FILES_PER_PAGE:04d}.json" not in first.text
    assert 'href="?page=2"' in first.text
    assert f"request_{FILES_PER_PAGE:04d}.json" in second.text
    assert "request_0000.json" not in second.text
    for page in bad:
        assert page.status_code == 400
        assert "page must be a whole number from 1 to 1,000,000,000, got" in page.text


async def test_the_listing_link_is_reached_from_a_plain_client(
    any_storage: Storage, saved: Path
) -> None:
    experiment_id, _ = await record(any_storage, saved)
    async with dashboard_client(any_storage.uri) as client:
        listing = await client.get(f"/experiments/{experiment_id}/files")
        followed = [
            await client.get(href)
            for href in (
                f"/experiments/{experiment_id}/files/{name}"
                for name in ("notes.txt", "request_0000.json", "response_0000.json")
            )
            if href in listing.text
        ]
    assert [r.status_code for r in followed] == [200, 200, 200]
