"""Files written whole or not at all: under a temporary name, renamed once complete."""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["whole_file"]


@contextlib.contextmanager
def whole_file(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[TextIO]:
    """A UTF-8 text file that becomes ``path`` only once the block ends without error.

    It is written next to ``path`` under a hidden temporary name and renamed, so a
    failure (a full disk) leaves no partial file and any previous one unchanged. The
    file is created as ``open()`` creates one (mode 0666 less the umask); a symlink is
    followed. A path that is not a regular file (``/dev/stdout``, a FIFO) is written
    directly.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        with open(target, "w", encoding="utf-8", newline=newline) as file:
            yield file
        return
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding="utf-8", newline=newline) as file:
            yield file
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
