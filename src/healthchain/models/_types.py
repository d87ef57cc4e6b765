"""Small field types shared by the request and response models."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

__all__ = ["Url"]

Url = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")]
"""An absolute URL (``scheme://...``), kept as the string it was given."""
