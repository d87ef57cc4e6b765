"""Helpers the tests import (``from helpers.storage import Storage``); fixtures are in conftest.

``storage``       plain-SQL side door into the database a test writes to, outages
``postgres``      the PostgreSQL server under test: its URL, emptying it
``filesystems``   small real filesystems (read-only, full) for failing writes
``sandbox_cases`` use cases and a runner for the sandbox tests
``cli``           the command line run in-process, and its one-line errors
``pipelines``     the pipeline tests record with their experiments
``errors``        the text an exception shows, with everything chained to it

A test that needs something this machine lacks (Chromium, a PostgreSQL server) calls
:func:`unavailable`: skipped with the reason on a developer machine, failed in CI.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["STRESS_SCALE", "in_ci", "unavailable"]

STRESS_SCALE = max(1, int(os.environ.get("HEALTHCHAIN_STRESS_SCALE", "1")))
"""``nox -s stress`` sets this to run the reliability tests longer and harder."""


def in_ci() -> bool:
    """True under CI (``CI=true``, as GitHub Actions and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """A tool or server this test needs is missing: skip here, fail in CI, which has them all.

    ``reason`` says what is missing and how to get it.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: CI must provide it)", pytrace=False)
    pytest.skip(reason)
