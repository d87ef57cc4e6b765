"""Exceptions raised by ``healthchain.data_generators``.

Each also derives from the builtin whose meaning fits::

    DataGeneratorError
    ├── WorkflowError (ValueError)                 no workflow set, or one not supported
    └── FreeTextError (ValueError)                 the free-text CSV cannot be used
        ├── FreeTextFileNotFoundError (FileNotFoundError)   no file at the path
        ├── FreeTextColumnError (LookupError)      the column is not in the CSV's header
        └── EmptyFreeTextError                     the CSV has no text in that column
"""

from __future__ import annotations

__all__ = [
    "DataGeneratorError",
    "EmptyFreeTextError",
    "FreeTextColumnError",
    "FreeTextError",
    "FreeTextFileNotFoundError",
    "WorkflowError",
]


class DataGeneratorError(Exception):
    """Base class of every error raised by the data generators."""


class WorkflowError(DataGeneratorError, ValueError):
    """The generator has no workflow, or one it cannot generate data for."""


class FreeTextError(DataGeneratorError, ValueError):
    """The free-text CSV or its column cannot be used."""


class FreeTextFileNotFoundError(FreeTextError, FileNotFoundError):
    """There is no file at the free-text path."""


class FreeTextColumnError(FreeTextError, LookupError):
    """The free-text column is not in the CSV's header."""

    def __str__(self) -> str:
        # LookupError subclasses such as KeyError would repr() the message; keep it plain.
        return str(self.args[0]) if self.args else ""


class EmptyFreeTextError(FreeTextError):
    """The CSV has no non-blank value in the free-text column."""
