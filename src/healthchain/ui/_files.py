"""The files a sandbox run saved, served read-only from the folder recorded with it.

``/experiments/{id}/files`` lists them and ``/experiments/{id}/files/{name}`` serves one.
Only regular files directly inside the recorded ``files_dir`` are served: a name is a
plain file name (no ``/``, no ``..``, no leading dot, so no half-written temporary
file), opened relative to the folder's own descriptor without following a symlink, so
neither a crafted name nor a symlink placed in the folder reaches anything outside it.
JSON is served as ``application/json``; anything else as plain text to download, never
as something a browser would render or run.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from healthchain._formatting import plural
from healthchain.tracking import Experiment, ExperimentNotFoundError

__all__ = ["FILES_PER_PAGE", "MAX_FILE_BYTES", "file_routes"]

FILES_PER_PAGE = 500
"""Files listed on one page of a run's files, by name."""
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest saved file served; a larger one is named with where it is instead."""
MAX_PAGE = 10**9
"""The highest page number of a listing accepted (more than any folder holds)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
"""A file name the sandbox writes (``request_0001.json``): one path component, no dot
first; anything else is never a saved file."""

Render = Callable[..., HTMLResponse]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    size: int
    modified: datetime


class _Unavailable(Exception):
    """The files cannot be shown: an HTTP status and a sentence saying why."""

    def __init__(self, status_code: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status_code, self.title, self.message = status_code, title, message


def file_routes(render: Render, headers: Mapping[str, str]) -> list[Route]:
    """The two routes, rendering pages with ``render`` and sending ``headers`` (the
    dashboard's CSP and ``nosniff``) with every file."""

    async def listing(request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        try:
            page = _page(request.query_params.get("page"))
            experiment = await _experiment(request, experiment_id)
            folder = _folder(experiment)
            entries = await anyio.to_thread.run_sync(_list, folder)
        except _Unavailable as exc:
            return _error(render, request, exc)
        start = (page - 1) * FILES_PER_PAGE
        shown = entries[start : start + FILES_PER_PAGE]
        return render(
            request,
            "files.html",
            {
                "experiment": experiment,
                "files_dir": folder,
                "entries": shown,
                "count": plural(len(entries), "file"),
                "first_index": start + 1,
                "prev_page": page - 1 if page > 1 else None,
                "next_page": page + 1 if start + FILES_PER_PAGE < len(entries) else None,
            },
        )

    async def content(request: Request) -> Response:
        experiment_id = request.path_params["experiment_id"]
        name = request.path_params["name"]
        try:
            experiment = await _experiment(request, experiment_id)
            folder = _folder(experiment)
            body = await anyio.to_thread.run_sync(_read, folder, name)
        except _Unavailable as exc:
            return _error(render, request, exc)
        served = dict(headers)
        served["Cache-Control"] = "no-cache"  # a running run may still be writing
        if name.endswith(".json"):
            return Response(body, media_type="application/json", headers=served)
        served["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(body, media_type="text/plain; charset=utf-8", headers=served)

    return [
        Route("/experiments/{experiment_id}/files", listing, methods=["GET"]),
        Route("/experiments/{experiment_id}/files/{name}", content, methods=["GET"]),
    ]


def _error(render: Render, request: Request, exc: _Unavailable) -> HTMLResponse:
    context = {"title": exc.title, "message": exc.message}
    return render(request, "error.html", context, exc.status_code)


def _page(text: str | None) -> int:
    if text is None:
        return 1
    value = int(text) if text.isdigit() and len(text) <= 10 else 0
    if not 1 <= value <= MAX_PAGE:
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text):,} characters)"
        raise _Unavailable(
            400, "Bad page", f"page must be a whole number from 1 to {MAX_PAGE:,}, got {shown}"
        )
    return value


async def _experiment(request: Request, experiment_id: str) -> Experiment:
    tracker = request.state.dashboard.tracker
    try:
        found: Experiment = await tracker.get_experiment(experiment_id)
    except ExperimentNotFoundError as exc:
        raise _Unavailable(404, "Experiment not found", str(exc)) from None
    return found


def _folder(experiment: Experiment) -> str:
    if experiment.files_dir is None:
        raise _Unavailable(
            404,
            "No saved files",
            f"experiment {experiment.id!r} has no saved requests and responses: it ran "
            "with save_data=False, or outside the sandbox",
        )
    return experiment.files_dir


def _unavailable(folder: str, exc: OSError) -> _Unavailable:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return _Unavailable(
            404,
            "Saved files not found",
            f"the folder {folder!r} recorded for this run no longer exists: it was moved or "
            "deleted",
        )
    return _Unavailable(
        500,
        "Saved files unreadable",
        f"the folder {folder!r} recorded for this run cannot be read: {exc.strerror or exc}",
    )


def _open_folder(folder: str) -> int:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _unavailable(folder, exc) from None


def _list(folder: str) -> list[_Entry]:
    """The regular files directly in ``folder`` that :func:`_read` serves, by name
    (blocking: run in a worker thread)."""
    fd = _open_folder(folder)
    try:
        entries = []
        for name in sorted(os.listdir(fd)):
            if not _NAME.fullmatch(name):
                continue
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # removed since it was listed
            if stat.S_ISREG(info.st_mode):
                entries.append(
                    _Entry(name, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))
                )
        return entries
    except OSError as exc:
        raise _unavailable(folder, exc) from None
    finally:
        os.close(fd)


def _read(folder: str, name: str) -> bytes:
    """The bytes of saved file ``name`` in ``folder`` (blocking: run in a worker thread)."""
    missing = _Unavailable(
        404, "File not found", f"there is no readable saved file {name!r} in {folder!r}"
    )
    if not _NAME.fullmatch(name):
        raise missing
    dir_fd = _open_folder(folder)
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError:  # gone, a symlink (never followed: ELOOP), a socket, unreadable
            raise missing from None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise missing  # a folder, a FIFO, a device: never read
        if info.st_size > MAX_FILE_BYTES:
            raise _Unavailable(
                413,
                "File too large to show",
                f"{name!r} is {info.st_size:,} bytes, over the {MAX_FILE_BYTES:,} served; "
                f"open it in {folder!r}",
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            return file.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    finally:
        os.close(fd)
