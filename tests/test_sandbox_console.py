"""What a run prints: one traceback per distinct error, and the end-of-run summary."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.sandbox_cases import async_ok, define, load_sync, new_request, run
from helpers.storage import Storage

import healthchain as hc
from healthchain import models
from healthchain.models import CDSRequest, CDSResponse
from healthchain.sandbox._summary import FAILURE_KINDS_SHOWN
from healthchain.tracking import ExperimentStatus
from healthchain.use_cases import ClinicalDecisionSupport


def model_not_loaded(self: Any, request: CDSRequest) -> CDSResponse:
    raise ValueError("model not loaded")


LINE_OF_MODEL_ERROR = model_not_loaded.__code__.co_firstlineno + 1


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info is not None]


def summary(caplog: pytest.LogCaptureFixture) -> str:
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Sandbox run ")]
    return record.getMessage()


def test_a_repeated_error_prints_one_traceback_and_is_counted(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    cls = define(model_not_loaded, load_sync, storage_uri=any_storage.uri, num=6)
    with caplog.at_level(logging.INFO, "healthchain"):
        result, _ = run(cls)

    assert result.status is ExperimentStatus.FAILED
    (traceback,) = tracebacks(caplog)
    assert traceback.name == "healthchain.sandbox"
    assert traceback.getMessage() == (
        "handler 'svc' raised ValueError (the first error of its kind: others like it are "
        "counted in the run's summary, not printed)"
    )
    assert "model not loaded" in caplog.text  # in the traceback
    text = summary(caplog)
    assert "\n  failed: 6 x HTTP 500: handler 'svc' raised ValueError: model not loaded\n" in text
    assert (
        "\n  raised: ValueError: model not loaded in handler 'svc' at "
        f"test_sandbox_console.py:{LINE_OF_MODEL_ERROR}, 6 times (traceback logged once)\n"
    ) in text
    # the requests still failed one by one, each with its error
    assert [o.error for o in result.failures] == [
        "HTTP 500: handler 'svc' raised ValueError: model not loaded"
    ] * 6


def test_distinct_errors_each_print_one_traceback_and_messages_do_not_split_them(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    def two_ways(self: Any, request: CDSRequest) -> CDSResponse:
        seen.append(1)
        if len(seen) % 2:
            raise KeyError(f"patient {len(seen)}")  # a message that names the request
        raise ValueError("model not loaded")

    cls = define(
        two_ways, load_sync, storage_uri=any_storage.uri, num=6, service={"max_concurrency": 1}
    )
    with caplog.at_level(logging.INFO, "healthchain"):
        run(cls)

    assert [r.exc_info[0] for r in tracebacks(caplog) if r.exc_info] == [KeyError, ValueError]
    text = summary(caplog)
    assert "\n  raised: KeyError: 'patient 1' in handler 'svc' at test_sandbox_console.py:" in text
    assert ", 3 times (traceback logged once)\n" in text
    assert "\n  raised: ValueError: model not loaded in handler 'svc' at " in text
    assert "\n  failed: 3 x HTTP 500: handler 'svc' raised ValueError: model not loaded\n" in text
    assert "\n  failed: 1 x HTTP 500: handler 'svc' raised KeyError: 'patient 5'\n" in text


def test_the_summary_of_a_completed_run_names_what_it_did(
    any_storage: Storage, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    def cards(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        return len(response.cards)

    cls = define(
        async_ok, load_sync, storage_uri=any_storage.uri, num=4, extra={"cards": hc.score(cards)}
    )
    with caplog.at_level(logging.INFO, "healthchain.sandbox"):
        result, _ = run(cls, save_data=True, save_dir=str(tmp_path))

    metrics = result.metrics
    assert summary(caplog) == (
        f"Sandbox run {result.experiment_id}: COMPLETED\n"
        "  requests: 4 (4 ok, 0 failed)\n"
        f"  latency: p50 {metrics['latency_p50_ms']:.1f} ms, "
        f"p95 {metrics['latency_p95_ms']:.1f} ms\n"
        "  mean scores: cards 1\n"
        f"  files: {tmp_path / str(result.experiment_id)}"
    )
    assert tracebacks(caplog) == []
    assert [r.levelno for r in caplog.records if r.getMessage().startswith("Sandbox run")] == [
        logging.INFO
    ]


def test_an_untracked_run_that_sent_nothing_says_so(caplog: pytest.LogCaptureFixture) -> None:
    def nothing(self: Any) -> CDSRequest:
        raise RuntimeError("no data")

    cls = define(async_ok, nothing, storage_uri=None, num=2)
    with caplog.at_level(logging.INFO, "healthchain.sandbox"):
        result, _ = run(cls)
    text = summary(caplog)
    assert text.startswith("Sandbox run (untracked): FAILED\n  requests: 2 (0 ok, 2 failed)\n")
    assert "mean scores" not in text
    assert "\n  files: not saved\n" in text
    assert "\n  failed: 2 x the @ehr method 'load' raised RuntimeError: no data\n" in text
    assert f"\n  error: {result.error}" in text


def test_many_kinds_of_failure_list_the_most_frequent_and_count_the_rest(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    def numbered(self: Any, request: CDSRequest) -> CDSResponse:
        seen.append(1)
        raise ValueError(f"case {len(seen) if len(seen) > 2 else 0}")

    num = FAILURE_KINDS_SHOWN + 5
    cls = define(
        numbered, load_sync, storage_uri=any_storage.uri, num=num, service={"max_concurrency": 1}
    )
    with caplog.at_level(logging.INFO, "healthchain"):
        run(cls)
    lines = summary(caplog).splitlines()
    failed = [line for line in lines if line.startswith("  failed: ")]
    assert failed[0] == "  failed: 2 x HTTP 500: handler 'svc' raised ValueError: case 0"
    assert len(failed) == FAILURE_KINDS_SHOWN + 1
    assert failed[-1] == "  failed: 4 more requests with 4 other messages"
    assert len(tracebacks(caplog)) == 1  # one line raised them all
    assert f", {num} times (traceback logged once)" in summary(caplog)


def test_a_failing_feedback_handler_prints_one_traceback(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answers: list[int] = []
    feedback = {
        "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
        "outcome": "overridden",
        "outcomeTimestamp": "2020-12-11T00:00:00Z",
    }

    @hc.sandbox(
        experiment_config={"storage_uri": any_storage.uri, "project_name": "feedback"},
        service_config={"port": port},
    )
    class FailingFeedback(ClinicalDecisionSupport):
        @hc.ehr(workflow="patient-view", num=3)
        def load(self) -> CDSRequest:
            url = f"http://127.0.0.1:{port}/cds-services/svc/feedback"
            with httpx.Client(trust_env=False) as client:
                answers.append(client.post(url, json={"feedback": [feedback]}).status_code)
            return new_request()

        @hc.api
        def svc(self, request: CDSRequest) -> CDSResponse:
            return CDSResponse(cards=[])

        @hc.feedback
        def take(self, received: models.CDSFeedback) -> None:
            raise RuntimeError("feedback store down")

    with caplog.at_level(logging.INFO, "healthchain"), FailingFeedback() as use_case:
        result = use_case.start_sandbox(save_data=False)
    assert answers == [500, 500, 500]
    assert result.status is ExperimentStatus.COMPLETED  # the requests themselves succeeded
    (traceback,) = tracebacks(caplog)
    assert traceback.getMessage().startswith("feedback handler raised RuntimeError (the first")
    assert (
        "\n  raised: RuntimeError: feedback store down in feedback handler at "
        "test_sandbox_console.py:"
    ) in summary(caplog)
    assert ", 3 times (traceback logged once)" in summary(caplog)


def test_many_kinds_of_error_raised_list_the_first_and_count_the_rest(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = [type(f"Error{i}", (Exception,), {}) for i in range(FAILURE_KINDS_SHOWN + 2)]
    seen: list[int] = []

    def each_its_own(self: Any, request: CDSRequest) -> CDSResponse:
        seen.append(1)
        raise kinds[min(len(seen), len(kinds)) - 1]("bad")

    num = len(kinds) + 2  # the last kind three times
    cls = define(
        each_its_own,
        load_sync,
        storage_uri=any_storage.uri,
        num=num,
        service={"max_concurrency": 1},
    )
    with caplog.at_level(logging.INFO, "healthchain"):
        run(cls)
    raised = [line for line in summary(caplog).splitlines() if line.startswith("  raised: ")]
    assert len(tracebacks(caplog)) == len(kinds)
    assert raised[0].startswith(
        "  raised: Error0: bad in handler 'svc' at test_sandbox_console.py:"
    )
    assert len(raised) == FAILURE_KINDS_SHOWN + 1
    assert raised[-1] == "  raised: 2 more kinds of error, 4 times (tracebacks logged above)"
