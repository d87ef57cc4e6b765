"""One HTTP request sent to an ASGI app exactly as given, below any HTTP client.

httpx normalises a path (``..`` segments go) and always has a body to send; a test of
path traversal, or of a client that went away, needs the raw ASGI call instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

__all__ = ["raw_request", "response_parts"]


async def raw_request(
    app: ASGIApp,
    method: str,
    raw_path: bytes,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    state: dict[str, Any] | None = None,
    disconnected: bool = False,
) -> list[Message]:
    """Every message ``app`` sends for ``method raw_path`` with an empty body (or, if
    ``disconnected``, a client that is gone before the body arrives)."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": list(headers),
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    if state is not None:
        scope["state"] = state
    sent: list[Message] = []

    async def receive() -> Message:
        if disconnected:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def response_parts(sent: Sequence[Message]) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and whole body of the messages :func:`raw_request` returned."""
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])
