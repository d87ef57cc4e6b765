"""A griffe extension for the API reference: defaults named by a constant show their value.

The trackers' signatures take their defaults from the one home of the settings
(``heartbeat_interval: float = DEFAULT_SETTINGS.heartbeat_interval``), which griffe
reads as written: a reader would see the expression, not the number. Each default (of a
parameter or an attribute, so dataclass fields and their ``__init__`` too) that is a
name or a dotted name is looked up in the module that defines it, imported as the
package runs; when it is a plain value (``None``, a bool, a number or a string) it is
shown as its ``repr``, the way ``inspect.signature`` shows it. Anything else (an enum
member, a call, a container) is left as written.
"""

from __future__ import annotations

import enum
import importlib
import re
from typing import Any

import griffe

__all__ = ["ConstantDefaults", "resolved_default"]

DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
PLAIN = (bool, int, float, str, type(None))


def resolved_default(module_path: str, expression: str) -> str | None:
    """The ``repr`` of what ``expression`` (a dotted name) means in ``module_path``,
    when that is a plain value; None to leave it as written."""
    if not DOTTED.fullmatch(expression):
        return None
    first, *rest = expression.split(".")
    namespace = vars(importlib.import_module(module_path))
    if first not in namespace:
        return None
    value = namespace[first]
    for name in rest:
        value = getattr(value, name, _MISSING)
        if value is _MISSING:
            return None
    if isinstance(value, enum.Enum) or not isinstance(value, PLAIN):
        return None
    return repr(value)


_MISSING = object()


class ConstantDefaults(griffe.Extension):
    """Show the values of defaults that name a constant (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.is_alias:
            return
        if isinstance(obj, griffe.Function):
            for parameter in obj.parameters:
                if parameter.default is not None:
                    value = resolved_default(obj.module.path, str(parameter.default))
                    parameter.default = value or parameter.default
        elif isinstance(obj, griffe.Attribute) and obj.value is not None:
            obj.value = resolved_default(obj.module.path, str(obj.value)) or obj.value
