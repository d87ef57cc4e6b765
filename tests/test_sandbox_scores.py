"""``@score``: scorers called on each valid response, their scores stored with each request
record, the run's metrics, and a failing scorer failing the run (under the blocking-call
detector, as every test here: a ``def`` scorer must never run on the event loop)."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from helpers.sandbox_cases import async_ok, card, define, load_async, load_sync, run
from helpers.storage import Storage

from healthchain.models import CDSRequest, CDSResponse
from healthchain.sandbox import SandboxDefinitionError, SandboxResult, sandbox, score
from healthchain.sandbox._run_metrics import AUTOMATIC_METRICS, score_means
from healthchain.sandbox._scoring import Scorer, Scoring
from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentStatus,
    ExperimentTracker,
    RequestRecord,
)
from healthchain.tracking._records import nearest_rank
from healthchain.use_cases import ClinicalDecisionSupport


def _records(uri: str, experiment_id: str | None) -> list[RequestRecord]:
    assert experiment_id is not None
    with ExperimentTracker(uri) as tracker:
        return tracker.list_requests(experiment_id)


def _scorers(**scorers: Callable[..., Any]) -> dict[str, Any]:
    return {name: score(func) for name, func in scorers.items()}


def card_count(self: Any, request: CDSRequest, response: CDSResponse) -> float:
    return len(response.cards)


def failing_every(nth: int) -> Callable[..., Any]:
    """An async handler failing every ``nth`` request; the others take 0-2 ms."""
    calls: list[int] = []

    async def handler(self: Any, request: CDSRequest) -> CDSResponse:
        calls.append(1)
        await anyio.sleep(0.001 * (len(calls) % 3))
        if len(calls) % nth == 0:
            raise RuntimeError("no summary")
        return CDSResponse(cards=[card()])

    return handler


# -- scores, sync and async ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_scores_are_stored_with_each_request_and_their_means_are_metrics(
    any_storage: Storage, kind: str
) -> None:
    threads: dict[str, set[int]] = {"loop": set(), "scorer": set()}

    async def load(self: Any) -> CDSRequest:
        threads["loop"].add(threading.get_ident())
        return await load_async(self)

    def card_count(self: Any, request: CDSRequest, response: CDSResponse) -> int:
        threads["scorer"].add(threading.get_ident())
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # a worker thread: no loop here
        return len(response.cards)  # an int: stored as a float

    def summary(self: Any, request: CDSRequest, response: CDSResponse) -> dict[str, float]:
        return {
            "summary_chars": len(response.cards[0].summary),
            "names_the_hook": float(request.hook in response.cards[0].summary),
        }

    async def card_count_async(self: Any, request: CDSRequest, response: CDSResponse) -> int:
        threads["scorer"].add(threading.get_ident())
        await anyio.lowlevel.checkpoint()
        return len(response.cards)

    async def summary_async(self: Any, request: CDSRequest, response: CDSResponse) -> Any:
        return summary(self, request, response)

    scorers = (
        _scorers(card_count=card_count, summary=summary)
        if kind == "def"
        else _scorers(card_count=card_count_async, summary=summary_async)
    )
    cls = define(async_ok, load, storage_uri=any_storage.uri, num=4, extra=scorers)
    result, experiment = run(cls)

    expected = {"card_count": 1.0, "summary_chars": 18.0, "names_the_hook": 1.0}
    assert result.status is ExperimentStatus.COMPLETED, result.error
    assert [o.scores for o in result.outcomes] == [expected] * 4
    records = _records(any_storage.uri, result.experiment_id)
    assert [r.scores for r in records] == [expected] * 4
    assert result.mean_scores == expected
    assert {k: result.metrics[k] for k in expected} == expected
    assert experiment.status is ExperimentStatus.COMPLETED
    if kind == "def":
        assert threads["scorer"].isdisjoint(threads["loop"])
    else:
        assert threads["scorer"] == threads["loop"]


def test_a_run_without_tracking_still_scores() -> None:
    result, experiment = run(
        define(async_ok, load_sync, storage_uri=None, num=3, extra=_scorers(card_count=card_count))
    )
    assert experiment is None
    assert result.status is ExperimentStatus.COMPLETED
    assert [o.scores for o in result.outcomes] == [{"card_count": 1.0}] * 3
    assert result.mean_scores == {"card_count": 1.0}
    assert result.metrics["requests"] == 3


def test_failed_requests_are_not_scored(any_storage: Storage) -> None:
    cls = define(
        failing_every(2),
        load_sync,
        storage_uri=any_storage.uri,
        num=4,
        extra=_scorers(cc=card_count),
    )
    result, _ = run(cls)
    assert result.status is ExperimentStatus.FAILED
    assert [o.scores for o in result.outcomes] == [{"cc": 1.0}, None, {"cc": 1.0}, None]
    records = _records(any_storage.uri, result.experiment_id)
    assert [(r.index, r.failed, r.scores) for r in records] == [
        (0, False, {"cc": 1.0}),
        (1, True, None),
        (2, False, {"cc": 1.0}),
        (3, True, None),
    ]


def test_nan_scores_are_stored_and_left_out_of_the_mean(any_storage: Storage) -> None:
    seen: list[int] = []

    def relevance(self: Any, request: CDSRequest, response: CDSResponse) -> dict[str, float]:
        seen.append(1)
        # "does not apply" to every other response; never applies for "never"
        return {"relevance": math.nan if len(seen) % 2 else 0.5, "never": math.nan}

    cls = define(
        async_ok, load_sync, storage_uri=any_storage.uri, num=4, extra=_scorers(rel=relevance)
    )
    result, _ = run(cls)
    records = _records(any_storage.uri, result.experiment_id)
    stored = [r.scores["relevance"] for r in records if r.scores is not None]
    assert [math.isnan(value) for value in stored] == [True, False, True, False]
    assert all(math.isnan(r.scores["never"]) for r in records if r.scores is not None)
    assert result.metrics["relevance"] == 0.5
    assert math.isnan(result.metrics["never"])
    with ExperimentTracker(any_storage.uri) as tracker:
        (relevance,) = tracker.get_metric_history(result.experiment_id, "relevance")  # type: ignore[arg-type]
        (never,) = tracker.get_metric_history(result.experiment_id, "never")  # type: ignore[arg-type]
    assert relevance.value == 0.5
    assert math.isnan(never.value)


def test_score_means_leave_nan_out_and_follow_infinities() -> None:
    means = score_means(
        [
            {"a": 1.0, "b": math.inf, "c": math.inf, "d": math.nan},
            {"a": math.nan, "b": 1.0, "c": -math.inf},
            {"a": 2.0},
        ]
    )
    assert means["a"] == 1.5
    assert means["b"] == math.inf
    assert math.isnan(means["c"])  # inf + -inf
    assert math.isnan(means["d"])  # only NaN
    assert score_means([]) == {}


# -- a scorer never delays the service or the client ----------------------------------


def test_an_async_scorer_waiting_on_the_last_answer_does_not_hold_up_the_run(
    any_storage: Storage,
) -> None:
    """If a scorer delayed the service's answers or the client's next request, the last
    answer would never come while a scorer waits for it: the guard fails the run."""
    events: list[str] = []
    all_answered = anyio.Event()

    async def answer(self: Any, request: CDSRequest) -> CDSResponse:
        events.append("answer")
        if events.count("answer") == 5:
            all_answered.set()
        return CDSResponse(cards=[card()])

    async def waits_for_every_answer(self: Any, request: CDSRequest, response: Any) -> float:
        events.append("scorer called")
        with anyio.fail_after(30):  # a guard against a hang, not a timing assertion
            await all_answered.wait()
        events.append("scorer returned")
        return 1.0

    cls = define(
        answer,
        load_async,
        storage_uri=any_storage.uri,
        num=5,
        extra=_scorers(patient=waits_for_every_answer),
    )
    result, _ = run(cls)
    assert result.status is ExperimentStatus.COMPLETED, result.error
    # Batches go to the scorer on a timer, so a call may come before or after any
    # answer; what matters is that every answer came while a scorer was waiting for it.
    assert events.count("answer") == 5
    last_answer = max(i for i, event in enumerate(events) if event == "answer")
    assert events.index("scorer returned") > last_answer
    assert events.count("scorer returned") == 5
    assert [r.scores for r in _records(any_storage.uri, result.experiment_id)] == [
        {"patient": 1.0}
    ] * 5


def test_a_sync_scorer_blocked_until_the_last_answer_does_not_hold_up_the_run(
    any_storage: Storage,
) -> None:
    answered: list[int] = []
    all_answered = threading.Event()
    first_call = threading.Event()

    def answer(self: Any, request: CDSRequest) -> CDSResponse:
        answered.append(1)
        if len(answered) == 2:
            # the second answer waits until the first response is being scored
            assert first_call.wait(30)
        if len(answered) == 5:
            all_answered.set()
        return CDSResponse(cards=[card()])

    def blocks(self: Any, request: CDSRequest, response: Any) -> float:
        first_call.set()
        if not all_answered.wait(30):  # a guard against a hang, not a timing assertion
            raise TimeoutError("the run waited for this scorer")
        return 1.0

    cls = define(answer, load_sync, storage_uri=any_storage.uri, num=5, extra=_scorers(b=blocks))
    result, _ = run(cls)
    assert result.status is ExperimentStatus.COMPLETED, result.error
    assert [r.scores for r in _records(any_storage.uri, result.experiment_id)] == [{"b": 1.0}] * 5


async def _score_directly(
    scorer: Callable[[Any, Any], Any], responses: int, **options: Any
) -> dict[int, dict[str, float]]:
    """Responses scored by ``Scoring`` itself, all queued before the first batch closes."""
    scored: dict[int, dict[str, float]] = {}
    scoring = Scoring(
        [Scorer.of(type("Case", (), {"judge": scorer})(), "judge")],
        scored.__setitem__,
        **options,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(scoring.run)
        for index in range(responses):
            scoring.put(index, f"request {index}", f"response {index}")
        await scoring.finish()
    assert scoring.error is None, scoring.error
    return scored


@pytest.mark.anyio
async def test_async_scorers_that_wait_run_concurrently_up_to_the_bound() -> None:
    state = {"in_flight": 0, "peak": 0}
    four_in = anyio.Event()

    async def judge(self: Any, request: str, response: str) -> float:
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        if state["in_flight"] == 4:
            four_in.set()
        with anyio.fail_after(30):  # a guard against a hang, not a timing assertion
            await four_in.wait()  # one at a time, this would never return
        state["in_flight"] -= 1
        return float(request.endswith(response[-1]))

    scored = await _score_directly(judge, 10, max_concurrency=4)
    assert scored == {i: {"judge": 1.0} for i in range(10)}
    assert state["peak"] == 4


@pytest.mark.anyio
async def test_async_scorers_that_never_wait_stay_in_one_task() -> None:
    tasks: set[object] = set()

    async def judge(self: Any, request: str, response: str) -> float:
        tasks.add(asyncio.current_task())
        return 1.0

    assert await _score_directly(judge, 10) == {i: {"judge": 1.0} for i in range(10)}
    assert len(tasks) == 1


# -- a failing scorer fails the run ----------------------------------------------------


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_raising_scorer_fails_the_run_and_every_response_is_still_recorded(
    any_storage: Storage, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def judge(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        raise ValueError("judge unavailable")

    async def judge_async(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        judge(self, request, response)
        return 1.0

    def healthy(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        return 1.0

    scorers = _scorers(judge=judge if kind == "def" else judge_async, healthy=healthy)
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=3, extra=scorers)
    with caplog.at_level(logging.ERROR, "healthchain.sandbox"):
        result, experiment = run(cls)

    message = (
        "scorer 'judge' failed on 3 of 3 responses; first: request 0: raised ValueError: "
        "judge unavailable"
    )
    assert result.status is ExperimentStatus.FAILED
    assert result.error == message
    assert experiment.status is ExperimentStatus.FAILED
    assert experiment.error == message
    with pytest.raises(Exception, match="scorer 'judge' failed"):
        result.raise_for_status()
    assert len(result.responses) == 3
    records = _records(any_storage.uri, result.experiment_id)
    assert [(r.index, r.failed, r.scores) for r in records] == [
        (i, False, {"healthy": 1.0}) for i in range(3)
    ]
    assert "scorer 'judge' failed" in caplog.text


def test_a_scorer_failing_on_some_responses_names_the_first(any_storage: Storage) -> None:
    calls: list[int] = []

    def flaky(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        calls.append(1)
        if len(calls) in (2, 4):
            raise KeyError(f"call {len(calls)}")
        return 1.0

    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=4, extra=_scorers(f=flaky))
    result, _ = run(cls)
    assert result.error == (
        "scorer 'f' failed on 2 of 4 responses; first: request 1: raised KeyError: 'call 2'"
    )
    records = _records(any_storage.uri, result.experiment_id)
    assert [r.scores for r in records] == [{"f": 1.0}, {}, {"f": 1.0}, {}]


BAD_VALUES: list[tuple[Any, str]] = [
    ("yes", "returned 'yes'; a scorer returns a number or a mapping of score names to numbers"),
    (True, "returned True; a scorer returns a number"),
    (None, "returned None; a scorer returns a number"),
    ([1.0], r"returned \[1\.0\]; a scorer returns a number"),
    (10**400, r"the score\['bad'\] 10+\.\.\.0+ is too large for a float"),
    ({"": 1.0}, "the scores: score name must be a non-empty string naming the metric, got str ''"),
    ({"x": "y"}, r"the scores\['x'\] must be an int or a float, got str 'y'"),
    ({"x\x00": 1.0}, "contains a NUL character"),
    ({"requests": 1.0}, "returned the score 'requests', the name of a metric every run logs"),
    ({"good": 2.0}, "returned the score 'good', which scorer 'good' returns too"),
]


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_a_bad_return_value_fails_the_run_naming_the_scorer_and_the_value(
    value: Any, message: str
) -> None:
    def good(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        return 1.0

    def bad(self: Any, request: CDSRequest, response: CDSResponse) -> Any:
        return value

    cls = define(async_ok, load_sync, storage_uri=None, num=2, extra=_scorers(good=good, bad=bad))
    result, _ = run(cls)
    assert result.status is ExperimentStatus.FAILED
    assert result.error is not None
    assert result.error.startswith("scorer 'bad' failed on 2 of 2 responses; first: request 0: ")
    assert re.search(message, result.error), result.error
    assert [o.scores for o in result.outcomes] == [{"good": 1.0}] * 2


def test_bad_scores_are_refused_even_when_valid_scores_come_first(any_storage: Storage) -> None:
    def mixed(self: Any, request: CDSRequest, response: CDSResponse) -> dict[str, Any]:
        return {"fine": 1.0, "broken": "n/a"}

    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=2, extra=_scorers(m=mixed))
    result, _ = run(cls)
    assert result.status is ExperimentStatus.FAILED
    # all or nothing per scorer and response: no half of a bad mapping is stored
    assert [r.scores for r in _records(any_storage.uri, result.experiment_id)] == [{}, {}]


# -- cut short --------------------------------------------------------------------------


@pytest.fixture(params=["def", "async def"])
def scorer_stuck_case(any_storage: Storage, request: pytest.FixtureRequest) -> Any:
    """Built outside the event loop: opening the sync tracker waits for its thread."""
    stuck = threading.Event()
    released = threading.Event()

    async def never_returns(self: Any, request: CDSRequest, response: Any) -> float:
        stuck.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def blocks(self: Any, request: CDSRequest, response: Any) -> float:
        stuck.set()
        released.wait(60)  # released when the test is over: the run must not wait for it
        return 1.0

    scorer = blocks if request.param == "def" else never_returns
    cls = define(async_ok, load_sync, storage_uri=any_storage.uri, num=3, extra=_scorers(n=scorer))
    try:
        with cls() as use_case:
            yield use_case, stuck
    finally:
        released.set()


@pytest.mark.anyio
async def test_a_run_cut_short_while_scoring_records_every_response_unscored(
    scorer_stuck_case: Any, any_storage: Storage
) -> None:
    use_case, stuck = scorer_stuck_case
    results: list[SandboxResult] = []

    async def start() -> None:
        results.append(await use_case.astart_sandbox(save_data=False))

    async with anyio.create_task_group() as tg:
        tg.start_soon(start)
        assert await anyio.to_thread.run_sync(stuck.wait, 30)
        tg.cancel_scope.cancel()

    async with AsyncExperimentTracker(any_storage.uri) as tracker:
        (experiment,) = await tracker.list_experiments()
        records = await tracker.list_requests(experiment.id)
        requests = await tracker.get_metric_history(experiment.id, "requests")
        scored = await tracker.get_metric_history(experiment.id, "n")
    assert experiment.status is ExperimentStatus.INTERRUPTED
    assert [(r.index, r.failed, r.scores) for r in records] == [
        (i, False, None) for i in range(len(records))
    ]
    assert len(records) >= 1
    # what finished is measured all the same; nothing was scored
    assert [p.value for p in requests] == [len(records)]
    assert scored == []


# -- the run's metrics -----------------------------------------------------------------


def test_the_run_metrics_agree_with_the_request_records(
    any_storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    cls = define(
        failing_every(5),
        load_sync,
        storage_uri=any_storage.uri,
        num=20,
        extra=_scorers(cards=card_count),
    )
    with caplog.at_level(logging.INFO, "healthchain.sandbox"):
        result, _ = run(cls)
    records = _records(any_storage.uri, result.experiment_id)
    latencies = sorted(r.latency_ms for r in records)
    first = min(r.start_time for r in records).timestamp()
    last = max(r.start_time.timestamp() + r.latency_ms / 1000 for r in records)
    assert result.metrics == {
        "requests": len(records),
        "failures": sum(r.failed for r in records),
        "latency_p50_ms": nearest_rank(latencies, 0.50),
        "latency_p95_ms": nearest_rank(latencies, 0.95),
        "latency_p99_ms": nearest_rank(latencies, 0.99),
        "requests_per_s": len(records) / (last - first),
        "cards": 1.0,
    }
    assert (result.metrics["requests"], result.metrics["failures"]) == (20, 4)
    assert list(result.metrics)[: len(AUTOMATIC_METRICS)] == list(AUTOMATIC_METRICS)
    with ExperimentTracker(any_storage.uri) as tracker:
        stats = tracker.request_stats(result.experiment_id)  # type: ignore[arg-type]
        experiment = tracker.get_experiment(result.experiment_id)  # type: ignore[arg-type]
        logged = {
            key: [(p.step, p.value) for p in tracker.get_metric_history(result.experiment_id, key)]  # type: ignore[arg-type]
            for key in result.metrics
        }
    assert logged == {key: [(0, value)] for key, value in result.metrics.items()}
    assert experiment.metrics == result.metrics
    assert (stats.p50_ms, stats.p95_ms) == (
        result.metrics["latency_p50_ms"],
        result.metrics["latency_p95_ms"],
    )
    assert "\n  mean scores: cards 1\n" in caplog.text


def test_a_run_without_requests_has_only_the_counts() -> None:
    from healthchain.sandbox._run_metrics import run_metrics

    assert run_metrics([]) == {"requests": 0, "failures": 0}


# -- definition ------------------------------------------------------------------------


def test_score_marks_callables_only() -> None:
    with pytest.raises(SandboxDefinitionError, match="@score marks a function or method, got 3"):
        score(3)  # type: ignore[type-var]


def test_a_scorer_may_not_take_an_automatic_metrics_name() -> None:
    def requests(self: Any, request: CDSRequest, response: CDSResponse) -> float:
        return 1.0

    cls = type("Named", (ClinicalDecisionSupport,), {"requests": score(requests)})
    with pytest.raises(
        SandboxDefinitionError,
        match="the @score method 'requests' has the name of one of the metrics every run logs",
    ):
        sandbox(cls)


def test_scorers_are_found_along_the_mro_base_first_in_definition_order() -> None:
    from healthchain.sandbox._handlers import find_handlers

    def s(self: Any, request: Any, response: Any) -> float:
        return 1.0

    base = type(
        "Base", (ClinicalDecisionSupport,), {"b2": score(s), "b1": score(functools.partial(s))}
    )
    child = type("Child", (base,), {"c1": score(lambda self, q, r: 1.0)})
    assert find_handlers(child).scores == ("b2", "b1", "c1")
    assert find_handlers(ClinicalDecisionSupport).scores == ()
