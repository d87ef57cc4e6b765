"""The version of the installed distribution, read from its metadata (never hard-coded)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["UNKNOWN", "package_version"]

UNKNOWN = "0+unknown"
"""``healthchain.__version__`` of a source tree that was never installed (PEP 440 valid)."""


def package_version() -> str:
    """The installed ``healthchain`` distribution's version, or :data:`UNKNOWN`."""
    try:
        return metadata.version("healthchain")
    except metadata.PackageNotFoundError:
        return UNKNOWN
