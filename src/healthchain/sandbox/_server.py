"""Serving a use case's ASGI app with uvicorn inside the sandbox's own event loop."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator, Generator

import anyio
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ._exception_groups import collapse_exception_groups
from ._exceptions import ServiceStartError

__all__ = ["serve"]

logger = logging.getLogger("healthchain.sandbox")

GRACEFUL_SHUTDOWN_SECONDS = 2
"""How long uvicorn waits for open connections when stopping before it cancels them."""

STARTUP_SECONDS = 10
"""How long the service may take to start listening."""


class _Server(uvicorn.Server):
    """A uvicorn server that reports readiness with an event and leaves signals alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = anyio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The sandbox installs its own handlers, which write the INTERRUPTED status.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class _InFlight:
    """Wraps the app so requests still running when the run ends can be cancelled.

    By then the client has given up on them (timed out or interrupted); cancelling them
    lets the server stop at once and quietly instead of after a grace period.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.scopes: set[anyio.CancelScope] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.CancelScope() as cancel_scope:
            self.scopes.add(cancel_scope)
            try:
                await self.app(scope, receive, send)
            finally:
                self.scopes.discard(cancel_scope)

    def cancel_all(self) -> None:
        for cancel_scope in list(self.scopes):
            cancel_scope.cancel()


async def _bind(host: str, port: int) -> socket.socket:
    """Bind a listening address first, so a port in use is an error before anything runs."""
    try:
        infos = await anyio.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ServiceStartError(
            f"cannot resolve service host {host!r}: {exc}; set service_config['host'] "
            "to an address such as '127.0.0.1'"
        ) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceStartError(
                f"port {port} on {host} is already in use; stop the program using it or "
                "set service_config={'port': 0} to pick a free port"
            ) from exc
        raise ServiceStartError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock


def _client_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    # A wildcard address is reachable through loopback.
    connect = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in connect:
        connect = f"[{connect}]"
    return f"http://{connect}:{port}"


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) and yield its base URL once ready.

    On exit, requests still in flight (the client no longer waits for them) are cancelled
    and the server stops; if it does not within a few seconds it is cancelled too, so
    leaving the block never hangs.
    """
    sock = await _bind(host, port)
    in_flight = _InFlight(app)
    config = uvicorn.Config(
        in_flight,
        host=host,
        port=sock.getsockname()[1],
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    stopped = anyio.Event()
    server_scope = anyio.CancelScope(shield=True)

    failure: list[BaseException] = []

    async def run_server() -> None:
        try:
            # Shielded: the server is stopped by ``should_exit``, never half-way through.
            with server_scope:
                await server.serve(sockets=[sock])
        except (Exception, SystemExit) as exc:
            failure.append(exc)
        finally:
            sock.close()
            stopped.set()
            server.ready.set()

    with collapse_exception_groups():
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_server)
            try:
                with anyio.move_on_after(STARTUP_SECONDS, shield=True):
                    await server.ready.wait()
                if not server.started:
                    cause = failure[0] if failure else None
                    raise ServiceStartError(
                        f"the service on {host}:{port} failed to start: {cause!r}"
                    ) from cause
                url = _client_url(host, sock)
                logger.info("Sandbox service listening on %s", url)
                yield url
            finally:
                in_flight.cancel_all()
                server.should_exit = True
                with anyio.move_on_after(GRACEFUL_SHUTDOWN_SECONDS + 3, shield=True):
                    await stopped.wait()
                if not stopped.is_set():
                    logger.warning("The sandbox service did not stop in time; cancelling it")
                    server_scope.cancel()
