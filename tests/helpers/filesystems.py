"""Small real filesystems for tests of writes that fail: read-only or soon full.

Mounting needs root, as in CI (root writes through file modes, so a mode cannot make a
folder unwritable for it).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["tmpfs"]


@contextlib.contextmanager
def tmpfs(target: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs with ``options`` (e.g. ``"size=64k"``, ``"ro,size=64k"``) on ``target``."""
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, (
        f"this test mounts a tmpfs and needs root (as in CI): {mounted.stderr.strip()}"
    )
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)
