"""ExperimentTracker: the synchronous facade, from scripts, threads and running loops."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster

from healthchain.tracking import (
    ExperimentNotFoundError,
    ExperimentStatus,
    ExperimentTracker,
    InvalidFilterError,
    StorageError,
    TrackerClosedError,
)


@pytest.fixture
def tracker(storage_uri: str) -> Iterator[ExperimentTracker]:
    with ExperimentTracker(storage_uri, project_name="sync") as tracker:
        yield tracker


def test_the_facade_mirrors_the_async_tracker(tracker: ExperimentTracker) -> None:
    experiment_id = tracker.start_experiment(
        "run", tags={"environment": "production"}, components=[{"name": "llm"}]
    )
    tracker.end_experiment(experiment_id, "FAILED", error="boom")
    experiment = tracker.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == "boom"
    assert experiment.components[0].name == "llm"
    assert [e.id for e in tracker.list_experiments({"tags": {"environment": "production"}})] == [
        experiment_id
    ]
    assert tracker.list_experiments(limit=0) == []
    assert tracker.reap_stale() == []
    assert tracker.request_stats(experiment_id).count == 0
    assert tracker.delete_experiments([experiment_id]) == 1
    assert tracker.project_name == "sync"
    assert "sync" in repr(tracker)
    assert "open" in repr(tracker)


def test_errors_cross_the_portal_unchanged(tracker: ExperimentTracker) -> None:
    with pytest.raises(ExperimentNotFoundError, match="'nope'"):
        tracker.get_experiment("nope")
    with pytest.raises(InvalidFilterError, match="'colour'"):
        tracker.list_experiments({"colour": "red"})


def test_track_statuses_including_keyboard_interrupt(tracker: ExperimentTracker) -> None:
    with tracker.track("ok") as ok_id:
        pass
    with pytest.raises(RuntimeError, match="model down"), tracker.track("bad") as bad_id:
        raise RuntimeError("model down")
    with pytest.raises(KeyboardInterrupt), tracker.track("ctrl-c") as interrupted_id:
        raise KeyboardInterrupt
    assert tracker.get_experiment(ok_id).status is ExperimentStatus.COMPLETED
    bad = tracker.get_experiment(bad_id)
    assert (bad.status, bad.error) == (ExperimentStatus.FAILED, "RuntimeError: model down")
    assert tracker.get_experiment(interrupted_id).status is ExperimentStatus.INTERRUPTED
    # the portal's loop survived the KeyboardInterrupt
    assert len(tracker.list_experiments()) == 3


def test_many_threads_at_once(tracker: ExperimentTracker) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            experiment_id = tracker.start_experiment(tags={"thread": threading.get_ident()})
            tracker.end_experiment(experiment_id)
            with lock:
                ids.append(experiment_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listed = tracker.list_experiments()
    assert len(ids) == 200
    assert {e.id for e in listed} == set(ids)
    assert all(e.status is ExperimentStatus.COMPLETED for e in listed)


def test_works_inside_a_running_event_loop(
    tracker: ExperimentTracker, blockbuster: BlockBuster
) -> None:
    # A Jupyter cell: synchronous calls from the thread that runs an event loop.
    blockbuster.deactivate()  # blocking that loop is exactly what a notebook cell does

    async def cell() -> str:
        with tracker.track("from-a-notebook") as experiment_id:
            await asyncio.sleep(0)
        return experiment_id

    experiment_id = asyncio.run(cell())
    assert tracker.get_experiment(experiment_id).status is ExperimentStatus.COMPLETED


def test_closed_facade_refuses_calls(storage_uri: str) -> None:
    tracker = ExperimentTracker(storage_uri)
    experiment_id = tracker.start_experiment()
    tracker.close()
    tracker.close()  # idempotent
    assert "closed" in repr(tracker)
    with pytest.raises(TrackerClosedError, match="closed"):
        tracker.end_experiment(experiment_id)
    with pytest.raises(TrackerClosedError):
        tracker.list_experiments()
    # what was written before closing is there, and the close ended what was still open
    with ExperimentTracker(storage_uri) as reopened:
        experiment = reopened.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == "the tracker was closed while the experiment was open"


def test_bad_path_fails_at_construction_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "experiments.db"
    with pytest.raises(StorageError, match=r"missing-dir/experiments\.db.*does not exist"):
        ExperimentTracker(f"sqlite:///{target}")
    assert not target.parent.exists()


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        ExperimentTracker(f"sqlite:///{tmp_path}")


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write to; for root, made immutable (chattr +i)."""
    directory = tmp_path / "readonly"
    directory.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
    try:
        yield directory
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        else:
            directory.chmod(0o755)


def test_unwritable_location_is_refused_naming_it(readonly_dir: Path) -> None:
    target = readonly_dir / "experiments.db"
    with pytest.raises(StorageError, match=re.escape(f"{str(target)!r} is not writable")):
        ExperimentTracker(f"sqlite:///{target}")
    assert not target.exists()


def test_unclosed_facade_warns_and_shuts_down(storage_uri: str) -> None:
    tracker = ExperimentTracker(storage_uri)
    thread = tracker._loop_thread._thread
    with pytest.warns(ResourceWarning, match="unclosed"):
        del tracker  # the last reference: collected at once
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_generator_closed_inside_track_is_interrupted(tracker: ExperimentTracker) -> None:
    def steps() -> Iterator[str]:
        with tracker.track("stopped early") as experiment_id:
            yield experiment_id
            yield experiment_id

    stopped = steps()
    experiment_id = next(stopped)
    stopped.close()  # a loop over it left early
    experiment = tracker.get_experiment(experiment_id)
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert experiment.error == "GeneratorExit"
