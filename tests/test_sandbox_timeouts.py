"""The service timeout bounds everything a request waits for: the ``@ehr`` method, the
response, and a response held up by a blocked event loop. User code that never returns
fails the run, and the process can still exit afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers.sandbox_cases import async_ok, define, load_async, load_sync, new_request, run, sync_ok
from helpers.storage import Storage

from healthchain.models import CDSRequest, CDSResponse
from healthchain.tracking import ExperimentStatus

CHILD = Path(__file__).with_name("sandbox_stuck_child.py")
FD_CHILD = Path(__file__).with_name("sandbox_fd_child.py")


@pytest.fixture
def never() -> Iterator[threading.Event]:
    """What a stuck sync method waits on; set at teardown so its thread ends."""
    event = threading.Event()
    yield event
    event.set()


def hold_the_loop(seconds: float) -> None:
    """Block the calling thread (the event loop's, here) without a blocking call:
    what heavy computation in an async handler does."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


# -- an @ehr method that never returns -----------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_ehr_method_that_never_returns_fails_the_run_naming_it(
    kind: str, any_storage: Storage, never: threading.Event
) -> None:
    def load_forever(self: Any) -> CDSRequest:
        never.wait()
        return new_request()

    async def load_forever_async(self: Any) -> CDSRequest:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    load = load_forever if kind == "sync" else load_forever_async
    cls = define(sync_ok, load, storage_uri=any_storage.uri, num=2, service={"timeout": 0.3})
    result, experiment = run(cls)

    expected = (
        "2 of 2 requests failed; first (request 0): the @ehr method 'load' did not return "
        "within 0.3 s (service_config['timeout'])"
    )
    assert result.status is ExperimentStatus.FAILED
    # When something else held the loop past the timeout (seen once late in the CI suite
    # under coverage: a 0.58 s stall not caused by this test), the message goes on to say
    # so, by design (test_an_async_ehr_method_blocking_the_loop_past_the_timeout_is_named);
    # the part this test is about is the same.
    assert result.error is not None and result.error.startswith(expected)
    assert [o.status_code for o in result.outcomes] == [None, None]
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == result.error


@pytest.mark.slow
@pytest.mark.parametrize("stuck", ["ehr", "api"])
@pytest.mark.parametrize("entry", ["sync", "async"])
def test_the_process_exits_after_runs_whose_sync_code_never_returned(
    entry: str, stuck: str
) -> None:
    child = subprocess.run(
        [sys.executable, str(CHILD), entry, stuck],
        cwd=CHILD.parent,
        capture_output=True,
        text=True,
        timeout=60,  # without daemon threads the child never exits: TimeoutExpired
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[-1] == "EXITING"
    reason = (
        "the @ehr method 'load' did not return within 0.3 s (service_config['timeout'])"
        if stuck == "ehr"
        else "no response within 0.3 s (timeout)"
    )
    # Two runs, one after the other: the stuck thread of the first held up nothing.
    assert lines[:-1] == [f"FAILED 2 of 2 requests failed; first (request 0): {reason}"] * 2


# -- a blocked event loop ----------------------------------------------------------------


def test_a_response_held_up_by_a_handler_blocking_the_loop_is_a_timeout(
    any_storage: Storage,
) -> None:
    async def blocks_the_loop(self: Any, request: CDSRequest) -> CDSResponse:
        hold_the_loop(1.5)
        return CDSResponse(cards=[])

    cls = define(
        blocks_the_loop, load_sync, storage_uri=any_storage.uri, num=1, service={"timeout": 0.5}
    )
    result, experiment = run(cls)

    assert result.status is ExperimentStatus.FAILED
    assert experiment.status is ExperimentStatus.FAILED
    assert re.fullmatch(
        r"1 of 1 requests failed; first \(request 0\): no response within 0\.5 s \(timeout\); "
        r"it took 1\.\d\d s because the event loop was blocked for at least \d\.\d\d s, so "
        r"the timeout could not fire: look for a blocking call \(time\.sleep, sync I/O, "
        r"heavy computation\) in the async @api handler 'svc'",
        experiment.error,
    ), experiment.error
    (outcome,) = result.outcomes
    assert outcome.status_code is None
    assert outcome.response is None
    assert outcome.latency_ms >= 1500
    ((status_code, latency_ms),) = any_storage.query("SELECT status_code, latency_ms FROM requests")
    assert status_code is None
    assert latency_ms >= 1500


def test_an_async_ehr_method_blocking_the_loop_past_the_timeout_is_named(
    any_storage: Storage,
) -> None:
    async def load_slowly(self: Any) -> CDSRequest:
        hold_the_loop(1.5)
        return new_request()

    cls = define(sync_ok, load_slowly, storage_uri=any_storage.uri, num=1, service={"timeout": 0.5})
    result, experiment = run(cls)

    assert result.status is ExperimentStatus.FAILED
    assert re.fullmatch(
        r"1 of 1 requests failed; first \(request 0\): the @ehr method 'load' did not return "
        r"within 0\.5 s \(service_config\['timeout'\]\); it took 1\.\d\d s because the event "
        r"loop was blocked .* in the async @ehr method 'load'",
        experiment.error,
    ), experiment.error


def test_an_async_handler_and_ehr_method_are_both_suspects(any_storage: Storage) -> None:
    async def blocks_the_loop(self: Any, request: CDSRequest) -> CDSResponse:
        hold_the_loop(1.0)
        return await async_ok(self, request)

    cls = define(
        blocks_the_loop, load_async, storage_uri=any_storage.uri, num=1, service={"timeout": 0.3}
    )
    _, experiment = run(cls)
    assert experiment.error.endswith(
        "in the async @api handler 'svc' or the async @ehr method 'load'"
    ), experiment.error


# -- out of file descriptors ---------------------------------------------------------------


def test_running_out_of_file_descriptors_is_named_with_what_to_do() -> None:
    # A real limit, lowered in a child: 64 requests in flight need about 128 descriptors.
    # The server cannot accept and the client cannot connect, which used to read as a
    # plain timeout or, with the loop late, as a blocking call to look for.
    child = subprocess.run(
        [sys.executable, str(FD_CHILD), "64"],
        cwd=FD_CHILD.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    line = child.stdout.strip()
    assert line.startswith("FAILED "), line
    assert re.search(
        r"; the process ran out of file descriptors \((\d+ open, )?limit 64\), so connections "
        r"could not be opened or accepted: lower service_config\['max_concurrency'\] \(64 "
        r"now; each request in flight holds two\) or raise the open-file limit \(`ulimit -n`\)$",
        line,
    ), line
    assert "blocking call" not in line
