"""``healthchain ui``: serve the dashboard.

The dashboard (Starlette, Jinja2) and uvicorn are imported only when this command runs,
so the other commands load no web stack.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated, NoReturn

import typer

from healthchain.tracking import DEFAULT_STORAGE_URI

from ._exceptions import CommandError
from ._options import StorageOption, open_tracker

__all__ = ["ui"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CommandError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from exc
    return sock


def _fail(message: str) -> NoReturn:
    raise CommandError(message)


def _host_names(names: list[str] | None) -> list[str]:
    from healthchain.ui import host_pattern

    try:
        return [host_pattern(name) for name in names or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def ui(
    storage_uri: StorageOption = DEFAULT_STORAGE_URI,
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 8765,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            callback=_host_names,
            help="Also answer requests addressed to NAME, a host name or address clients "
            "use (repeatable; *.domain for its subdomains). localhost, loopback addresses "
            "and the --host address are always answered.",
        ),
    ] = None,
) -> None:
    """Serve the read-only experiments dashboard until Ctrl-C.

    Requests addressed to any other name are refused (400), whatever --host is, so a
    page elsewhere cannot read the dashboard through a DNS name rebound to it.
    """
    import uvicorn

    from healthchain.ui import create_app, host_pattern

    with open_tracker(storage_uri) as tracker:
        tracker.list_experiments(limit=1)  # fail here, in one line, if it cannot be read
    try:
        names = [host_pattern(host), *(allow_host or ())]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--host'") from None
    if _wildcard(host):
        # The machine's own name costs no lookup; its addresses would (DNS, interfaces).
        names.append(socket.gethostname())
    app_ = create_app(storage_uri, allowed_hosts=names)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    if not _is_loopback(host):
        answered = ", ".join(dict.fromkeys(["localhost", "loopback addresses", *names]))
        typer.echo(
            f"warning: serving on {host}: the dashboard has no login, so anyone who can "
            "reach this address can read every experiment. It answers only requests "
            f"addressed to {answered}: add --allow-host NAME for each other name or "
            "address clients use",
            err=True,
        )
    typer.echo(f"healthchain dashboard on http://{shown}:{bound}/ (Ctrl-C to stop)")
    server = uvicorn.Server(
        uvicorn.Config(app_, log_level="warning", access_log=False, lifespan="on")
    )
    with sock:
        server.run(sockets=[sock])
    if not server.started:
        _fail("the dashboard did not start; see the messages above")
