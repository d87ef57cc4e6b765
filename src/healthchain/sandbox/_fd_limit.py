"""Telling a run that ran out of file descriptors from one whose event loop was blocked.

When the process reaches its open-file limit, the server cannot accept connections
(asyncio retries ``accept`` a second later) and the client cannot open sockets, so
requests time out or fail to connect: the cure is fewer requests in flight or a higher
limit, not hunting for a blocking call.
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass

import anyio.to_thread

__all__ = ["FdShortage", "fd_shortage"]

OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE})
"""errno values that mean no file descriptor could be had: this process's limit
(EMFILE) or the system's (ENFILE)."""

HEADROOM = 8
"""Open descriptors this close to the soft limit count as out of them: by the time a
request has failed, the ones its own socket and its neighbours' held may be closed."""

_FD_DIRS = ("/proc/self/fd", "/dev/fd")


@dataclass(frozen=True, slots=True)
class FdShortage:
    """The process was out of file descriptors when a request failed."""

    open_fds: int | None
    """Descriptors open then; None when the evidence was an EMFILE/ENFILE error."""
    soft_limit: int | None
    """The ``RLIMIT_NOFILE`` soft limit (``ulimit -n``); None when unlimited."""

    def advice(self, max_concurrency: int) -> str:
        """What happened and what to do, for a request's error."""
        counts = [f"{self.open_fds} open"] if self.open_fds is not None else []
        counts += [f"limit {self.soft_limit}"] if self.soft_limit is not None else []
        shown = f" ({', '.join(counts)})" if counts else ""
        return (
            f"the process ran out of file descriptors{shown}, "
            "so connections could not be opened or accepted: lower "
            f"service_config['max_concurrency'] ({max_concurrency} now; each request in "
            "flight holds two) or raise the open-file limit (`ulimit -n`)"
        )


async def fd_shortage(error: BaseException | None = None) -> FdShortage | None:
    """An :class:`FdShortage` when ``error`` (or anything it wraps) is EMFILE/ENFILE or
    the process's open descriptors are within :data:`HEADROOM` of its soft limit."""
    soft = _soft_limit()
    if error is not None and _out_of_fds(error):
        # Not counted: the descriptors are freed as requests fail, so a count now could
        # read as though there had been plenty.
        return FdShortage(None, soft)
    if soft is None:
        return None
    # Listing the descriptors is a directory read: off the event loop.
    open_fds = await anyio.to_thread.run_sync(_count_open_fds, soft)
    if open_fds is None or open_fds < soft - HEADROOM:
        return None
    return FdShortage(open_fds, soft)


def _soft_limit() -> int | None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def _count_open_fds(soft: int | None) -> int | None:
    for path in _FD_DIRS:
        try:
            # One of the entries is the descriptor listing them.
            return len(os.listdir(path)) - 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in OUT_OF_FDS:
                return soft  # no descriptor left even to list them
            return None
    return None


def _out_of_fds(error: BaseException) -> bool:
    """True when ``error``, its causes or a group's members carry EMFILE or ENFILE."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in OUT_OF_FDS:
            return True
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        pending.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
    return False
