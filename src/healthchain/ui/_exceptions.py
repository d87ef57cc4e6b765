"""Exceptions raised by ``healthchain.ui``.

They extend the tracker's hierarchy, so one ``except TrackerError`` covers a bad filter
whether the tracker or the dashboard's parsing rejected it::

    TrackerError
    └── InvalidInputError (ValueError)
        └── InvalidFilterError
            └── TagSyntaxError          a tag filter that is not ``key=value``
"""

from __future__ import annotations

from healthchain.tracking import InvalidFilterError

__all__ = ["TagSyntaxError"]


class TagSyntaxError(InvalidFilterError):
    """A tag filter is not ``key=value`` (or ``key:=JSON``)."""
