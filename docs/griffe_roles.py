"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

The docstrings use roles such as ``:class:`StorageError``` and ``:meth:`reap_stale```,
which mkdocstrings would print as they are. Each becomes a cross-reference to the public
name it means (``healthchain.tracking.StorageError``), found among the package's exports
or the members of the exported class the docstring belongs to; a name with no public
home (a private helper) becomes plain code. A link that names nothing rendered fails
``mkdocs build --strict``, so the references stay true.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|exc|mod|obj):`(~?)([\w.]+)`")


def _exists(loader: griffe.GriffeLoader, path: str) -> bool:
    try:
        loader.modules_collection[path]
    except Exception:
        return False
    return True


def _target(obj: griffe.Object, name: str, loader: griffe.GriffeLoader) -> str | None:
    if name.startswith("healthchain."):
        public = not any(part.startswith("_") for part in name.split("."))
        return name if public and _exists(loader, name) else None
    package_path = ".".join(obj.path.split(".")[:2])
    try:
        package = loader.modules_collection[package_path]
    except Exception:
        return None
    exports = {str(e) for e in (package.exports or ())}
    first = name.split(".")[0]
    if first in exports:
        return f"{package_path}.{name}"
    owner = obj if obj.is_class else obj.parent
    if (
        owner is not None
        and owner.is_class
        and owner.name in exports
        and not first.startswith("_")
        and first in owner.all_members
    ):
        return f"{package_path}.{owner.name}.{name}"
    return None


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring as mkdocstrings cross-references."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.is_alias or obj.docstring is None:
            return

        def link(match: re.Match[str]) -> str:
            short, name = match.groups()
            text = name.rsplit(".", 1)[-1] if short else name
            target = _target(obj, name, loader)
            return f"[`{text}`][{target}]" if target else f"`{text}`"

        obj.docstring.value = ROLE.sub(link, obj.docstring.value)
