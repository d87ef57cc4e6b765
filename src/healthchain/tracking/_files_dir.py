"""Where a run saved its files: the folder recorded with an experiment, checked and written.

The folder is stored absolute and resolved (symlinks followed), so a reader started in
another directory, such as the dashboard, finds the same folder.
"""

from __future__ import annotations

import os

from ._exceptions import InvalidInputError
from ._schema import FILES_DIR
from ._update_ops import CountedUpdateOp
from ._validation import check_storable, show

__all__ = ["MAX_FILES_DIR_LENGTH", "FilesDirOp", "resolve_files_dir", "validate_files_dir"]

MAX_FILES_DIR_LENGTH = 4096
"""The longest folder path accepted, in characters (Linux's PATH_MAX)."""


def validate_files_dir(files_dir: object) -> str:
    """``files_dir`` as text, if it is a folder path that can be stored; not yet resolved."""
    if isinstance(files_dir, os.PathLike):
        files_dir = os.fspath(files_dir)
    if not isinstance(files_dir, str) or not files_dir:
        raise InvalidInputError(
            f"files_dir must be a non-empty folder path (str or os.PathLike), got {show(files_dir)}"
        )
    if len(files_dir) > MAX_FILES_DIR_LENGTH:
        raise InvalidInputError(
            f"files_dir is {len(files_dir):,} characters long, over the "
            f"{MAX_FILES_DIR_LENGTH:,} a path may have; {show(files_dir)}"
        )
    check_storable(files_dir, "files_dir")
    return files_dir


def resolve_files_dir(files_dir: str) -> str:
    """The absolute, resolved form of a checked ``files_dir`` (blocking: call in a thread)."""
    resolved = os.path.realpath(files_dir)
    check_storable(resolved, "files_dir resolved")  # a symlink may lead anywhere
    return resolved


class FilesDirOp(CountedUpdateOp):
    """The folder of one experiment's saved files, written over any previous one."""

    __slots__ = ()
    what = "saved-files folder"
    order = 1
    statement = FILES_DIR

    @classmethod
    def of(cls, experiment_id: str, files_dir: str) -> FilesDirOp:
        """Record ``files_dir`` (checked and resolved) for ``experiment_id``."""
        return cls({"b_id": experiment_id, "b_files_dir": files_dir})
