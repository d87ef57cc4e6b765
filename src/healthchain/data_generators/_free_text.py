"""Reading free text (e.g. discharge notes) from one column of a CSV file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ._exceptions import (
    EmptyFreeTextError,
    FreeTextColumnError,
    FreeTextError,
    FreeTextFileNotFoundError,
)

__all__ = ["read_free_text"]


def read_free_text(path: str | os.PathLike[str], column: str) -> list[str]:
    """Return the non-blank values of ``column`` in the CSV at ``path``, in file order.

    Blocking file I/O: call it from a worker thread in async code.
    """
    csv_path = Path(path)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise EmptyFreeTextError(
                    f"free-text CSV {str(csv_path)!r} is empty: expected a header row with "
                    f"a {column!r} column and at least one row of text"
                )
            if column not in header:
                raise FreeTextColumnError(
                    f"free-text CSV {str(csv_path)!r} has no column {column!r}; "
                    f"its columns are {header!r}: pass one of them as column_name"
                )
            texts = [text.strip() for row in reader if (text := row.get(column))]
    except FileNotFoundError:
        raise FreeTextFileNotFoundError(
            f"free-text CSV {str(csv_path)!r} does not exist (column {column!r}); "
            f"check free_text_path (relative paths resolve from {os.getcwd()!r})"
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise FreeTextError(
            f"free-text CSV {str(csv_path)!r} (column {column!r}) is not a UTF-8 CSV file: {exc}"
        ) from exc
    except IsADirectoryError:
        raise FreeTextError(
            f"free-text path {str(csv_path)!r} (column {column!r}) is a directory, not a CSV file"
        ) from None
    texts = [text for text in texts if text]
    if not texts:
        raise EmptyFreeTextError(
            f"free-text CSV {str(csv_path)!r} has no text in column {column!r}: "
            "add at least one row with a non-blank value"
        )
    return texts
