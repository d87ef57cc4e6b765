"""Saving a run's requests and responses as JSON files: a writable folder, whole files only."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from pathlib import Path

import anyio
import anyio.to_thread

from healthchain._files import whole_file

from ._client import Exchange
from ._exceptions import SandboxConfigError

__all__ = ["ExchangeWriter", "WriteFailed", "make_run_dir", "prepare_save_dir", "untracked_run_id"]

logger = logging.getLogger("healthchain.sandbox")


async def prepare_save_dir(save_dir: str) -> Path:
    """Create ``save_dir`` if needed and check that a file can be written in it."""
    if not isinstance(save_dir, str | Path) or not str(save_dir):
        raise SandboxConfigError(f"save_dir must be a directory path, got {save_dir!r}")
    directory = anyio.Path(save_dir)
    try:
        await directory.mkdir(parents=True, exist_ok=True)
        resolved = Path(await directory.resolve())
    except OSError as exc:
        raise SandboxConfigError(
            f"save_dir {str(save_dir)!r} cannot hold the saved requests: {exc.strerror or exc}; "
            "pass another save_dir or save_data=False"
        ) from exc
    try:
        await anyio.to_thread.run_sync(_probe, resolved)
    except OSError as exc:
        raise SandboxConfigError(
            f"save_dir {str(resolved)!r} cannot hold the saved requests: a file cannot be "
            f"written there ({exc.strerror or exc}); make it writable, or pass another "
            "save_dir or save_data=False"
        ) from exc
    return resolved


def untracked_run_id() -> str:
    """The folder name of a run that records no experiment: ``untracked-<uuid4>``."""
    return f"untracked-{uuid.uuid4()}"


async def make_run_dir(save_dir: Path, run_id: str) -> Path:
    """Create the run's own folder, ``<save_dir>/<run_id>/``, and return it."""
    directory = save_dir / run_id
    try:
        await anyio.Path(directory).mkdir(exist_ok=True)
    except OSError as exc:
        raise SandboxConfigError(
            f"the run's folder {str(directory)!r} cannot be created: {exc.strerror or exc}; "
            "make save_dir writable, or pass another save_dir or save_data=False"
        ) from exc
    return directory


def _probe(directory: Path) -> None:
    fd, name = tempfile.mkstemp(prefix=".healthchain-probe-", dir=directory)
    try:
        os.write(fd, b"{}\n")
    finally:
        os.close(fd)
        os.unlink(name)


class WriteFailed(Exception):
    """Writing one saved file failed; the file is not left half-written."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(f"writing {str(path)!r} failed: {cause.strerror or cause}")
        self.path = path


class ExchangeWriter:
    """Writes each request and response to ``{kind}_{index:04d}.json`` in the run's folder.

    Each file is written under a temporary name and renamed, so a failure (a full disk)
    leaves whole files only. :attr:`saved` counts the requests whose files were all written.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved = 0

    def write(self, batch: list[Exchange]) -> None:
        """Write a batch's files (blocking: call it in a worker thread)."""
        for exchange in batch:
            index = exchange.outcome.index
            for kind, body in (
                ("request", exchange.request_body),
                ("response", exchange.response_body),
            ):
                if body is None:
                    continue
                try:
                    text = json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n"
                except ValueError:
                    logger.debug("%s %d is not JSON; not saved", kind, index)
                    continue
                path = self.directory / f"{kind}_{index:04d}.json"
                try:
                    with whole_file(path) as file:
                        file.write(text)
                except OSError as exc:
                    raise WriteFailed(path, exc) from exc
            self.saved += 1
