"""The dashboard served by ``healthchain ui``: experiments in a browser, read-only.

``create_app(storage_uri)`` is a Starlette app; serve it with any ASGI server. The
filter and formatting helpers, re-exported here, live below both it and the command
line, which loads no web stack.
"""

from __future__ import annotations

from healthchain._filters import build_filters, format_tag, parse_tag
from healthchain._formatting import experiment_record, format_duration, format_time

from ._app import LOOPBACK_HOSTS, create_app
from ._exceptions import TagSyntaxError
from ._hosts import host_pattern

__all__ = [
    "LOOPBACK_HOSTS",
    "TagSyntaxError",
    "build_filters",
    "create_app",
    "experiment_record",
    "format_duration",
    "format_tag",
    "format_time",
    "host_pattern",
    "parse_tag",
]
