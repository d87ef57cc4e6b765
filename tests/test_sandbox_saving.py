"""Saving requests and responses on a real filesystem that refuses writes or fills up."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.filesystems import tmpfs
from helpers.sandbox_cases import async_ok, define, load_sync, run
from helpers.storage import Storage

from healthchain.sandbox import SandboxConfigError
from healthchain.sandbox._saving import make_run_dir
from healthchain.tracking import ExperimentStatus


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only filesystem: not writable, not even by root."""
    with tmpfs(tmp_path / "read-only", "ro,size=64k") as folder:
        yield folder


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB filesystem: 16 pages, so it fills after a few saved requests."""
    with tmpfs(tmp_path / "tiny", "size=64k") as folder:
        yield folder


@pytest.mark.parametrize("where", ["read-only mount", "procfs"])
def test_an_unwritable_save_dir_fails_before_any_row(
    where: str, read_only_folder: Path, any_storage: Storage
) -> None:
    folder = read_only_folder if where == "read-only mount" else Path(f"/proc/{os.getpid()}")
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=2)
    with pytest.raises(SandboxConfigError) as raised:
        run(cls, save_data=True, save_dir=str(folder))
    assert str(raised.value).startswith(
        f"save_dir {str(folder)!r} cannot hold the saved requests: a file cannot be written there ("
    )
    assert str(raised.value).endswith(
        "); make it writable, or pass another save_dir or save_data=False"
    )
    assert any_storage.statuses() == []
    assert os.listdir(read_only_folder) == []


def test_a_disk_filling_up_during_the_run_fails_it_leaving_whole_files(
    tiny_disk: Path, any_storage: Storage
) -> None:
    num = 40
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=num)
    result, experiment = run(cls, save_data=True, save_dir=str(tiny_disk))

    assert result.status is ExperimentStatus.FAILED
    assert len(result.outcomes) == num and all(o.ok for o in result.outcomes)
    folder = tiny_disk / str(result.experiment_id)
    match = re.fullmatch(
        rf"saving requests and responses failed: writing '{folder}/"
        rf"(request|response)_\d{{4}}\.json' failed: No space left on "
        rf"device; (\d+) of {num} requests were saved in '{folder}' \(free space there, "
        r"or pass another save_dir or save_data=False\)",
        result.error or "",
    )
    assert match, result.error
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == result.error
    assert experiment.files_dir == str(folder)  # what was saved is still found

    names = sorted(os.listdir(folder))
    assert not [name for name in names if name.endswith(".tmp")]  # no partial file left
    saved = int(match.group(2))
    assert 0 < saved < num
    requests = [name for name in names if name.startswith("request_")]
    assert saved <= len(requests) <= saved + 1
    for name in names:
        json.loads((folder / name).read_text())  # each file is whole


@pytest.mark.anyio
async def test_a_run_folder_that_cannot_be_made_is_a_config_error_naming_it(
    read_only_folder: Path,
) -> None:
    with pytest.raises(SandboxConfigError) as raised:
        await make_run_dir(read_only_folder, "0190a0b0-0000-7000-8000-000000000000")
    assert str(raised.value) == (
        f"the run's folder '{read_only_folder}/0190a0b0-0000-7000-8000-000000000000' cannot be "
        "created: Read-only file system; make save_dir writable, or pass another save_dir or "
        "save_data=False"
    )
