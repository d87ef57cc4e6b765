"""What an exception shows a user: its own text and everything chained to it."""

from __future__ import annotations

__all__ = ["chain_text"]


def chain_text(exc: BaseException | None) -> str:
    """The text of an exception and of everything chained to it, as a traceback shows."""
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)
