"""Exceptions raised by ``healthchain.tracking``.

Every error the tracker raises derives from :class:`TrackerError`, and also from the
builtin whose meaning fits, so ``except LookupError`` or ``except ValueError`` work too::

    TrackerError
    ├── ConfigurationError (ValueError)        bad storage URI or tracker option
    │   └── DriverNotInstalledError (ImportError)  the URI's driver is missing: install the extra
    ├── ExtraNotInstalledError (ImportError)   an optional extra (pandas) is missing
    ├── InvalidInputError (ValueError)         tags, components, pipeline_config, status
    │   └── InvalidFilterError                 unknown filter key or bad filter value
    ├── ExperimentNotFoundError (LookupError)  no experiment with that id
    ├── AmbiguousIdError (LookupError)         an id prefix that several experiments share
    ├── ExperimentStateError                   e.g. ending an experiment that already ended
    ├── TrackerClosedError (RuntimeError)      the tracker was closed (or bound to another loop)
    └── StorageError (OSError)                 the database could not be opened, read or written

Database driver and SQLAlchemy exceptions never escape: they are translated into
:class:`StorageError` in one place, with the original chained as ``__cause__``, and every
message names the storage by its masked URL (see :func:`~healthchain.tracking.mask_uri`).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousIdError",
    "ConfigurationError",
    "DriverNotInstalledError",
    "ExperimentNotFoundError",
    "ExperimentStateError",
    "ExtraNotInstalledError",
    "InvalidFilterError",
    "InvalidInputError",
    "StorageError",
    "TrackerClosedError",
    "TrackerError",
]


class TrackerError(Exception):
    """Base class of every error raised by the experiment tracker."""


class ConfigurationError(TrackerError, ValueError):
    """A storage URI or tracker option is not usable."""


class DriverNotInstalledError(ConfigurationError, ImportError):
    """The database driver a storage URI needs is not installed, or fails to import."""


class ExtraNotInstalledError(TrackerError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class InvalidInputError(TrackerError, ValueError):
    """Tags, components, a pipeline config or a status were rejected before any write."""


class InvalidFilterError(InvalidInputError):
    """A ``list_experiments`` filter has an unknown key or an unusable value."""


class ExperimentNotFoundError(TrackerError, LookupError):
    """No experiment has the given id."""

    def __init__(self, experiment_id: str) -> None:
        super().__init__(
            f"no experiment with id {experiment_id!r}; "
            "list_experiments() shows the ids this storage holds"
        )
        self.experiment_id = experiment_id


class AmbiguousIdError(TrackerError, LookupError):
    """An id prefix starts the ids of several experiments; ``matches`` holds a few of them."""

    def __init__(self, prefix: str, matches: Sequence[str], count: int) -> None:
        shown = ", ".join(matches)
        if count > len(matches):
            shown += f" and {count - len(matches)} more"
        super().__init__(
            f"id prefix {prefix!r} matches {count} experiments ({shown}); "
            "give more characters of the id"
        )
        self.prefix = prefix
        self.matches = tuple(matches)
        self.count = count


class ExperimentStateError(TrackerError):
    """The experiment is not in a state that allows the operation."""


class TrackerClosedError(TrackerError, RuntimeError):
    """The tracker was closed, or is used from an event loop it does not belong to."""


class StorageError(TrackerError, OSError):
    """The database could not be opened, read or written."""


def describe(exc: BaseException) -> str:
    """``Type: text``, or the type alone when the text is empty (as a timeout's often is)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
