"""_fd_limit: telling "out of file descriptors" apart, from an error or from the count of
descriptors open against the real RLIMIT_NOFILE soft limit."""

from __future__ import annotations

import errno
import resource
from collections.abc import Iterator

import anyio.to_thread
import pytest

from healthchain.sandbox._fd_limit import HEADROOM, FdShortage, _count_open_fds, fd_shortage

pytestmark = pytest.mark.anyio


@pytest.fixture
def soft_limit() -> Iterator[tuple[int, int]]:
    """The soft limit as it was (restored at teardown) and the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def open_fds() -> int:
    count = await anyio.to_thread.run_sync(_count_open_fds, None)
    assert count is not None
    return count


async def test_an_emfile_or_enfile_anywhere_in_an_error_is_a_shortage() -> None:
    try:
        try:
            raise OSError(errno.EMFILE, "Too many open files")
        except OSError as exc:
            raise ExceptionGroup("connect", [ValueError("other"), exc]) from None
    except ExceptionGroup as group:
        wrapped = RuntimeError("All connection attempts failed")
        wrapped.__cause__ = group
    shortage = await fd_shortage(wrapped)
    assert shortage is not None and shortage.open_fds is None
    assert await fd_shortage(OSError(errno.ENFILE, "File table overflow")) is not None


async def test_descriptors_near_the_soft_limit_are_a_shortage(
    soft_limit: tuple[int, int],
) -> None:
    _soft, hard = soft_limit
    assert await fd_shortage(OSError(errno.ECONNREFUSED, "refused")) is None
    resource.setrlimit(resource.RLIMIT_NOFILE, (await open_fds() + HEADROOM, hard))
    shortage = await fd_shortage()
    assert isinstance(shortage, FdShortage)
    assert shortage.soft_limit is not None and shortage.open_fds is not None
    assert shortage.open_fds >= shortage.soft_limit - HEADROOM
    resource.setrlimit(resource.RLIMIT_NOFILE, (await open_fds() + 4 * HEADROOM, hard))
    assert await fd_shortage() is None


def test_the_advice_names_the_numbers_and_what_to_do() -> None:
    assert FdShortage(120, 128).advice(64) == (
        "the process ran out of file descriptors (120 open, limit 128), so connections "
        "could not be opened or accepted: lower service_config['max_concurrency'] (64 now; "
        "each request in flight holds two) or raise the open-file limit (`ulimit -n`)"
    )
    assert "descriptors, so" in FdShortage(None, None).advice(8)
