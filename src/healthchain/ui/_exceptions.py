"""Exceptions raised by ``healthchain.ui``.

They extend the tracker's hierarchy, so one ``except TrackerError`` covers a bad filter
whether the tracker or the dashboard's parsing rejected it::

    TrackerError
    └── InvalidInputError (ValueError)
        └── InvalidFilterError
            └── TagSyntaxError          a tag filter that is not ``key=value``
"""

from __future__ import annotations

# Defined with the filter parsing the command line shares, below the web stack.
from healthchain._filters import TagSyntaxError

__all__ = ["TagSyntaxError"]
