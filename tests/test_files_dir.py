"""``set_files_dir``: the folder of a run's saved files, recorded with its experiment."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import anyio
import pytest
from helpers.storage import Storage

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentStatus,
    ExperimentTracker,
    InvalidInputError,
    StorageError,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``real/runs`` reached through the symlink ``link``, from ``tmp_path`` as the cwd."""
    real = tmp_path / "real" / "runs"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    return real


async def test_the_folder_is_stored_absolute_and_resolved(
    any_storage_uri: str, tmp_path: Path, linked: Path
) -> None:
    real = linked
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment("saved")
        assert (await tracker.get_experiment(experiment_id)).files_dir is None
        await tracker.set_files_dir(experiment_id, "link/runs/../runs")
        assert (await tracker.get_experiment(experiment_id)).files_dir == str(real)
        # again, as a Path, after the run ended: replaced
        await tracker.end_experiment(experiment_id)
        await tracker.set_files_dir(experiment_id, tmp_path / "not-made-yet")
        found = await tracker.get_experiment(experiment_id)
    assert found.files_dir == str(tmp_path / "not-made-yet")
    assert found.status is ExperimentStatus.COMPLETED
    assert not await anyio.Path(tmp_path / "not-made-yet").exists()  # recorded, never made


async def test_only_the_named_experiment_gets_the_folder(
    any_storage_uri: str, tmp_path: Path
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        first = await tracker.start_experiment("first")
        second = await tracker.start_experiment("second")
        await tracker.set_files_dir(first, str(tmp_path))
        listed = {e.id: e.files_dir for e in await tracker.list_experiments()}
    assert listed == {first: str(tmp_path), second: None}


@pytest.mark.parametrize(
    ("files_dir", "message"),
    [
        ("", "files_dir must be a non-empty folder path (str or os.PathLike), got ''"),
        (None, "files_dir must be a non-empty folder path (str or os.PathLike), got None"),
        (b"/tmp", "files_dir must be a non-empty folder path (str or os.PathLike), got b'/tmp'"),
        (3, "files_dir must be a non-empty folder path (str or os.PathLike), got 3"),
        ("/tmp/a\x00b", "files_dir contains a NUL character"),
        ("/tmp/\udc80", "files_dir contains '\\udc80' at position 5, a lone surrogate"),
        ("/" + "a" * 4096, "files_dir is 4,097 characters long, over the 4,096 a path may have"),
    ],
)
async def test_a_folder_that_cannot_be_stored_is_refused_naming_it(
    any_storage_uri: str, files_dir: object, message: str
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        experiment_id = await tracker.start_experiment("saved")
        with pytest.raises(InvalidInputError) as raised:
            await tracker.set_files_dir(experiment_id, files_dir)  # type: ignore[arg-type]
        assert str(raised.value).startswith(message)
        assert (await tracker.get_experiment(experiment_id)).files_dir is None


@pytest.mark.parametrize("experiment_id", [str(uuid.UUID(int=1, version=4)), "not-an-id"])
async def test_an_unknown_experiment_is_not_found(
    any_storage_uri: str, tmp_path: Path, experiment_id: str
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        await tracker.start_experiment("other")
        with pytest.raises(ExperimentNotFoundError) as raised:
            await tracker.set_files_dir(experiment_id, tmp_path)
        assert experiment_id in str(raised.value)
        assert [e.files_dir for e in await tracker.list_experiments()] == [None]


def test_the_sync_tracker_records_it_and_a_reader_cannot(
    any_storage: Storage, tmp_path: Path
) -> None:
    with ExperimentTracker(any_storage.uri) as tracker:
        experiment_id = tracker.start_experiment("saved")
        tracker.set_files_dir(experiment_id, os.fspath(tmp_path))
        assert tracker.get_experiment(experiment_id).files_dir == str(tmp_path)
    with ExperimentTracker(any_storage.uri, read_only=True) as reader:
        with pytest.raises(StorageError, match="read_only=True"):
            reader.set_files_dir(experiment_id, tmp_path / "other")
        assert reader.get_experiment(experiment_id).files_dir == str(tmp_path)


async def test_an_unknown_experiment_does_not_fail_the_folders_written_with_it(
    any_storage_uri: str, tmp_path: Path
) -> None:
    async with AsyncExperimentTracker(any_storage_uri) as tracker:
        ids = [await tracker.start_experiment(f"run {i}") for i in range(10)]
        calls = [tracker.set_files_dir(i, tmp_path / i) for i in ids]
        calls.insert(5, tracker.set_files_dir(str(uuid.uuid4()), tmp_path / "unknown"))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        stored = {e.id: e.files_dir for e in await tracker.list_experiments()}
    failed = [o for o in outcomes if o is not None]
    assert len(failed) == 1 and isinstance(failed[0], ExperimentNotFoundError)
    assert stored == {i: str(tmp_path / i) for i in ids}
