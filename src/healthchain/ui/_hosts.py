"""The Host header check that keeps the dashboard out of reach of DNS rebinding.

A page on another site can point a DNS name of its own at the dashboard's address and
read it through the visitor's browser; such a request carries that name in its Host
header. So the dashboard answers only requests addressed to ``localhost``, a loopback
address (127.0.0.0/8, ::1), or a name or address it was given: whatever address it is
bound to, the check stays on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "HostCheck", "host_pattern"]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
"""Host names always served (with the rest of 127.0.0.0/8), whatever else is allowed."""

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_PORT = re.compile(r"[0-9]{1,5}")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_pattern(name: str) -> str:
    """``name`` (a host name, an IP address, ``[v6]`` or ``*.domain``) in the form compared.

    Raises ``ValueError`` naming it if it is none of these (a port, a URL, ``*`` alone).
    """
    text = name.strip().lower()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    address = _address(bare)
    if address is not None:
        return address.compressed
    text = text.removesuffix(".")
    if len(text) > 253 or not _NAME.fullmatch(text):
        raise ValueError(
            f"{name!r} is not a host name or IP address; give one name a client uses to "
            "reach the dashboard, without scheme or port (e.g. dashboard.example.org, "
            "192.168.1.20, *.example.org)"
        )
    return text


def _host_of(header: str) -> str | None:
    """The host part of a Host header, normalised; None if the header is malformed."""
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return None
        host, rest = header[1:end], header[end + 1 :]
        if _address(host) is None:
            return None
    else:
        host, colon, port = header.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:])):
        return None
    host = host.lower().removesuffix(".")
    address = _address(host)
    return address.compressed if address is not None else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    address = _address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


class HostCheck:
    """ASGI middleware answering 400 to a request whose Host is not allowed."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        patterns = {host_pattern(name) for name in allowed}
        self.names = frozenset(p for p in patterns if not p.startswith("*."))
        self.suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))

    def allows(self, header: str | None) -> bool:
        """Whether a request with this Host header is served."""
        host = _host_of(header) if header else None
        if not host:
            return False
        return (
            host in self.names
            or _is_loopback(host)
            or (bool(self.suffixes) and host.endswith(self.suffixes))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.allows(
            Headers(scope=scope).get("host")
        ):
            response = PlainTextResponse("Invalid host header", status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
