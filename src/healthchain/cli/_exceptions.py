"""Exceptions raised by ``healthchain.cli``; each becomes one line on stderr::

CommandError                 a command cannot do what was asked (exit status 1)
└── DatabaseMissingError     a read command pointed at a SQLite file that does not exist
"""

from __future__ import annotations

__all__ = ["CommandError", "DatabaseMissingError"]


class CommandError(Exception):
    """A command failed for a reason the user can fix; the message says how."""


class DatabaseMissingError(CommandError, FileNotFoundError):
    """The SQLite file a read command would open does not exist (it is not created)."""
