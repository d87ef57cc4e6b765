"""The EHR client: calls the ``@ehr`` method and posts each request to the service."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread
import httpx
from pydantic import BaseModel, ValidationError

from healthchain._callables import is_async_callable, member
from healthchain._formatting import validation_summary
from healthchain.tracking import request_failed
from healthchain.use_cases import BaseUseCase

from ._exception_groups import collapse_exception_groups
from ._fd_limit import fd_shortage
from ._threads import run_in_daemon_thread

__all__ = ["EHRClient", "Exchange", "RequestOutcome"]

logger = logging.getLogger("healthchain.sandbox")

LOOP_BLOCKED_AFTER = 0.1
"""Seconds past a deadline after which the only explanation is a blocked event loop:
a free loop fires the deadline's timer within milliseconds."""


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What happened to one request of a run."""

    index: int
    """0-based position of the request in the run."""
    start_time: datetime
    """When the request was sent (timezone-aware UTC)."""
    latency_ms: float
    """Time from sending the request to reading the whole response."""
    status_code: int | None
    """HTTP status, or None when no response arrived."""
    response: Any
    """The validated response model (a ``CDSResponse`` for clinical decision support);
    None when the request failed."""
    error: str | None
    """Why the request failed; None when it succeeded."""
    scores: Mapping[str, float] | None = None
    """The scorers' scores of the response (NaN and +/-inf kept as such); None when no
    ``@score`` method ran on it."""

    @property
    def ok(self) -> bool:
        """True when the request got a valid response: not failed by the tracker's rule."""
        return not request_failed(self.error, self.status_code)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A finished request with the raw bodies, for recording and saving."""

    outcome: RequestOutcome
    request_body: bytes | None
    response_body: bytes | None
    request: Any = None
    """The request model sent (a ``CDSRequest``), for scorers; None when none was sent."""


class EHRClient:
    """Sends ``num`` requests built from the ``@ehr`` method, ``max_concurrency`` at a time."""

    def __init__(
        self,
        use_case: BaseUseCase,
        *,
        ehr_name: str,
        workflow: str,
        base_url: str,
        path: str,
        timeout: float,
        max_concurrency: int,
        loop_code: str = "async code on the sandbox's event loop",
        prefetch: Mapping[str, str] | None = None,
        bearer_token: Callable[[str], str] | None = None,
    ) -> None:
        self._prefetch = prefetch
        self._bearer_token = bearer_token
        self._use_case = use_case
        self._ehr_name = ehr_name
        self._ehr: Callable[[], Any] = member(use_case, ehr_name)
        self._workflow = workflow
        self._base_url = base_url
        self._path = path
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._loop_code = loop_code
        self._fd_advice: str | None = None

    async def run(self, num: int, on_exchange: Callable[[Exchange], None]) -> None:
        """Send the requests; ``on_exchange`` sees each one as it finishes, on the loop."""
        indices = iter(range(num))
        # Building the client reads the CA bundle: not on the loop's thread.
        client = await anyio.to_thread.run_sync(
            functools.partial(
                httpx.AsyncClient,
                base_url=self._base_url,
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(
                    max_connections=self._max_concurrency,
                    max_keepalive_connections=self._max_concurrency,
                ),
                headers={"content-type": "application/json"},
                trust_env=False,
            )
        )
        async with client:
            with collapse_exception_groups():
                async with anyio.create_task_group() as tg:
                    for _ in range(min(self._max_concurrency, num)):
                        tg.start_soon(self._worker, client, indices, on_exchange)

    async def _worker(
        self,
        client: httpx.AsyncClient,
        indices: Iterator[int],
        on_exchange: Callable[[Exchange], None],
    ) -> None:
        for index in indices:
            on_exchange(await self._exchange(client, index))

    async def _exchange(self, client: httpx.AsyncClient, index: int) -> Exchange:
        started = perf_counter()
        body: bytes | None = None
        request: Any = None
        try:
            with anyio.move_on_after(self._timeout):
                request, body = await self._request()
        except Exception as exc:
            logger.debug("request %d: the @ehr method failed", index, exc_info=True)
            reason = f"the @ehr method {self._ehr_name!r} raised {type(exc).__name__}: {exc}"
            return self._not_sent(index, reason)
        waited = perf_counter() - started
        if body is None or waited > self._timeout:
            reason = (
                f"the @ehr method {self._ehr_name!r} did not return within "
                f"{self._timeout:g} s (service_config['timeout']){await self._why_late(waited)}"
            )
            return self._not_sent(index, reason)

        start_time = datetime.now(UTC)
        started = perf_counter()
        reply: httpx.Response | None = None
        error: str | None = None
        try:
            # One deadline for the whole exchange (httpx's bounds each phase on its own).
            with anyio.move_on_after(self._timeout):
                reply = await client.post(self._path, content=body, headers=self._auth_headers())
        except httpx.TimeoutException:
            pass
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc or 'request failed'}"
            if isinstance(exc, httpx.TransportError) and (advice := await self._fds(exc)):
                error += f"; {advice}"
        elapsed = perf_counter() - started
        latency_ms = elapsed * 1000.0
        if error is None and (reply is None or elapsed > self._timeout):
            # A response that came after the deadline is a timeout too: the deadline
            # could not fire because the event loop was blocked (or no descriptor was left
            # to accept the connection with).
            reply = None
            error = (
                f"no response within {self._timeout:g} s (timeout){await self._why_late(elapsed)}"
            )
        status_code = None if reply is None else reply.status_code
        content = None if reply is None else reply.content
        response: BaseModel | None = None
        if reply is not None and error is None:
            if reply.status_code != 200:
                error = f"HTTP {reply.status_code}: {_error_message(reply)}"
            else:
                try:
                    response = self._use_case.parse_response(reply.content)
                except ValidationError as exc:
                    error = f"invalid response: {validation_summary(exc)}"
        outcome = RequestOutcome(
            index=index,
            start_time=start_time,
            latency_ms=latency_ms,
            status_code=status_code,
            response=response,
            error=error,
        )
        return Exchange(outcome, body, content, request)

    async def _why_late(self, elapsed: float) -> str:
        """Why a deadline passed: no file descriptors left, else a blocked loop if it
        fired late, else nothing known."""
        advice = await self._fds(None)
        return f"; {advice}" if advice else self._blocked(elapsed)

    async def _fds(self, error: BaseException | None) -> str | None:
        """Advice when the process is out of file descriptors; once seen, kept for the
        run's later failures (their neighbours' sockets may be closed by then)."""
        if self._fd_advice is None and (shortage := await fd_shortage(error)):
            self._fd_advice = shortage.advice(self._max_concurrency)
        return self._fd_advice

    def _blocked(self, elapsed: float) -> str:
        """Why a deadline was missed by more than a timer's slack: the loop was blocked."""
        late = elapsed - self._timeout
        if late <= LOOP_BLOCKED_AFTER:
            return ""
        return (
            f"; it took {elapsed:.2f} s because the event loop was blocked for at least "
            f"{late:.2f} s, so the timeout could not fire: look for a blocking call "
            f"(time.sleep, sync I/O, heavy computation) in {self._loop_code}"
        )

    def _not_sent(self, index: int, error: str) -> Exchange:
        outcome = RequestOutcome(
            index=index,
            start_time=datetime.now(UTC),
            latency_ms=0.0,
            status_code=None,
            response=None,
            error=error,
        )
        return Exchange(outcome, None, None)

    def _auth_headers(self) -> dict[str, str] | None:
        """``Authorization: Bearer <JWT>`` for the endpoint's URL, when the client signs."""
        if self._bearer_token is None:
            return None
        audience = self._base_url.rstrip("/") + self._path
        return {"Authorization": f"Bearer {self._bearer_token(audience)}"}

    async def _request(self) -> tuple[Any, bytes]:
        """Call the ``@ehr`` method; its request and the request's body. A sync one (with
        the request built and serialised) in a thread."""
        if is_async_callable(self._ehr):
            data = await self._ehr()
            return self._serialise(data)
        return await run_in_daemon_thread(self._build_sync)

    def _build_sync(self) -> tuple[Any, bytes]:
        return self._serialise(self._ehr())

    def _serialise(self, data: Any) -> tuple[Any, bytes]:
        request = self._use_case.make_request(
            data, workflow=self._workflow, prefetch=self._prefetch
        )
        return request, request.model_dump_json(by_alias=True, exclude_none=True).encode()


def _error_message(reply: httpx.Response) -> str:
    try:
        payload = reply.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
    text = reply.text.strip()
    return text[:200] or reply.reason_phrase
