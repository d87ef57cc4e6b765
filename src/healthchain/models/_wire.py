"""The base of every model that goes on the wire: tolerant in, nothing empty out.

CDS Hooks 2.0 (section "Extensions" and "JSON"): the name ``extension`` is reserved in
every object, later versions may add optional fields, and "JSON elements SHALL NOT be
null or empty". So keys a model does not declare are accepted and kept, and an optional
element that is None, ``""``, ``[]`` or ``{}`` is left out when the model is serialised.
A required element stays even when empty (``"cards": []`` is a valid answer).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

__all__ = ["WireModel"]


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str | list | dict | tuple) and len(value) == 0)


class WireModel(BaseModel):
    """A CDS Hooks object: unknown keys kept, empty optional elements never written."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _without_empty_elements(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        return {
            key: value
            for key, value in data.items()
            if not _is_empty(value) or (key in fields and fields[key].is_required())
        }
