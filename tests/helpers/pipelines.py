"""The pipeline tests record with their experiments, as ``start_experiment`` takes it."""

from __future__ import annotations

from typing import Any

__all__ = ["PIPELINE"]

PIPELINE: tuple[dict[str, Any], ...] = (
    {"name": "preprocess", "type": "function", "stage": "pre"},
    {"name": "llm", "type": "ChatModel", "stage": "inference"},
    {"name": "cards", "type": "function", "stage": "post"},
)
"""Three components, stored with positions 0, 1, 2; a tuple, so no test can change it for
the tests after it (its mappings are to be read only, too)."""
