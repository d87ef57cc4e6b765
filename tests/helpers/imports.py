"""Fresh interpreters, for what happens once a process: importing a driver, and where."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

__all__ = ["import_threads", "run_fresh"]

# Notes the thread on which MODULE's code runs: a spec lookup alone (find_spec) runs none.
_RECORDER = """
import sys, threading, anyio
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder

MODULE = sys.argv[1]
assert MODULE not in sys.modules, f"{MODULE} is imported before the test begins"
threads = []

class Recorder(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != MODULE:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module
            def exec_module(module):
                threads.append(threading.get_ident())
                execute(module)
            spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Recorder())
"""

_REPORT = """
loop_thread = anyio.run(main)
print(bool(threads), loop_thread in threads)
"""


def run_fresh(source: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``source`` in a new interpreter with ``args``; its stdout (a failure shows stderr).

    ``env`` is added to this process's environment.
    """
    done = subprocess.run(
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def import_threads(main: str, module: str, *args: str) -> tuple[bool, bool]:
    """Whether ``module`` was imported, and whether on the loop's thread, in a new
    interpreter running ``main``: source defining ``async def main()``, which returns
    ``threading.get_ident()`` and finds ``args`` at ``sys.argv[2:]``."""
    imported, on_loop = run_fresh(_RECORDER + main + _REPORT, module, *args).split()
    return imported == "True", on_loop == "True"
