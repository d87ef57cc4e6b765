"""Storage goes away in the middle of a sandbox run, for real, on both backends.

The service keeps answering either way. Back within the outage bound: everything is
recorded and the status is right. Gone for longer: the run ends promptly and says, in
the log and in the error it raises, what was not recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.sandbox_cases import card, define, load_sync, run
from helpers.storage import Storage, take_away_for

from healthchain.models import CDSRequest, CDSResponse
from healthchain.tracking import ExperimentStatus, ExperimentTracker, StorageError

pytestmark = pytest.mark.stress

OUTAGE_SECONDS = 1.0


@pytest.fixture
def outages() -> Iterator[list[threading.Event]]:
    """Outages a test started; each is over before the next test begins."""
    started: list[threading.Event] = []
    yield started
    for back in started:
        back.wait(30)


def outage_at_first_request(
    storage: Storage, seconds: float, outages: list[threading.Event]
) -> tuple[Any, dict[str, Any]]:
    """A sync handler (a worker thread) that takes storage away when the first request
    arrives, once RUNNING is committed, and counts the requests answered meanwhile."""
    state: dict[str, Any] = {"answered": 0, "answered_while_away": 0}
    lock = threading.Lock()

    def handler(self: Any, request: CDSRequest) -> CDSResponse:
        with lock:
            if "back" not in state:
                state["back"] = take_away_for(storage, seconds)
                outages.append(state["back"])
        with lock:
            state["answered"] += 1
            if not state["back"].is_set():
                state["answered_while_away"] += 1
        time.sleep(0.02)  # a little model work, so requests span the outage
        return CDSResponse(cards=[card("still answering")])

    return handler, state


def test_service_keeps_answering_and_records_everything_after_an_outage(
    any_storage: Storage, outages: list[threading.Event]
) -> None:
    storage = any_storage.with_short_waits()
    handler, state = outage_at_first_request(storage, OUTAGE_SECONDS, outages)
    cls = define(handler, load_sync, storage_uri=storage.uri, num=40)
    result, experiment = run(cls)

    assert state["back"].is_set()
    assert result.status is ExperimentStatus.COMPLETED
    assert len(result.outcomes) == 40
    assert all(outcome.ok for outcome in result.outcomes)
    assert state["answered_while_away"] >= 2  # requests were served during the outage
    assert experiment.status is ExperimentStatus.COMPLETED
    assert experiment.end_time is not None
    with ExperimentTracker(storage.uri) as tracker:
        stats = tracker.request_stats(experiment.id)
    assert (stats.count, stats.failures) == (40, 0)  # every record landed after the outage


def test_storage_gone_past_the_bound_ends_the_run_loudly_and_it_is_reaped_after(
    any_storage: Storage, outages: list[threading.Event], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    storage = any_storage.with_short_waits()
    handler, state = outage_at_first_request(storage, 4.0, outages)
    bound = {"outage_timeout": 0.5, "heartbeat_interval": 0.2}
    cls = define(handler, load_sync, storage_uri=storage.uri, num=20, experiment=bound)

    with cls() as use_case, pytest.raises(StorageError, match=r"not recorded: .*1 experiment end"):
        use_case.start_sandbox(save_data=False)
    assert state["answered"] == 20  # the service answered every request regardless
    assert not state["back"].is_set()  # the run did not wait for storage to return

    messages = [record.getMessage() for record in caplog.records]
    (failed,) = [m for m in messages if m.startswith("Writing ")]
    written = int(failed.split()[1])  # "Writing 7 request records failed: ..."
    assert "not recorded: " in failed
    assert f"{written} request records" in failed.split("not recorded: ")[1]
    skipped = [m for m in messages if "further request records were not written" in m]
    assert sum(int(m.split()[0]) for m in skipped) == 20 - written  # all 20 accounted for
    assert any("its final status FAILED was not recorded" in m for m in messages)
    assert any("its metrics were not recorded" in m for m in messages)

    assert state["back"].wait(30)
    with ExperimentTracker(storage.uri) as tracker:
        (experiment,) = tracker.list_experiments()
        assert experiment.status is ExperimentStatus.RUNNING  # the end never landed ...
        deadline = time.monotonic() + 10
        while not tracker.reap_stale():  # ... and its heartbeat stopped with the run
            assert time.monotonic() < deadline, "the abandoned run was never reaped"
            time.sleep(0.1)
        experiment = tracker.get_experiment(experiment.id)
    assert experiment.status is ExperimentStatus.FAILED
    assert "stopped reporting" in (experiment.error or "")
