"""The dashboard served by ``healthchain ui``: experiments in a browser, read-only.

``create_app(storage_uri)`` is a Starlette app; serve it with any ASGI server. The
filter and formatting helpers are shared with the command line.
"""

from __future__ import annotations

from ._app import LOOPBACK_HOSTS, create_app
from ._exceptions import TagSyntaxError
from ._filters import build_filters, format_tag, parse_tag
from ._hosts import host_pattern
from ._views import experiment_record, format_duration, format_time

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
