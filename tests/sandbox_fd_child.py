"""Run by test_sandbox_timeouts.py in a subprocess: a run with more requests in flight
than the open-file limit allows.

``python sandbox_fd_child.py LIMIT`` lowers this process's RLIMIT_NOFILE soft limit to
LIMIT, then runs an untracked sandbox with LIMIT requests in flight at once (two sockets
each), and prints the run's status and error on one line.
"""

from __future__ import annotations

import resource
import sys

from helpers.sandbox_cases import async_ok, define, load_async, run

if __name__ == "__main__":
    limit = int(sys.argv[1])
    cls = define(
        async_ok,
        load_async,
        storage_uri=None,
        num=limit,
        service={"max_concurrency": limit, "timeout": 1.0},
    )
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    result, _ = run(cls)
    print(result.status, result.error, flush=True)
