"""Packages depend one way, down DESIGN.md's layers: no pair imports each other."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest

import healthchain

SOURCE = Path(healthchain.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli", "ui"),
    ("sandbox",),
    ("use_cases",),
    ("pipeline",),
    ("data_generators",),
    ("models",),
    ("tracking",),
)
"""DESIGN.md's layer diagram, top first: a package may import the layers below its own."""

SAME_LAYER = {("cli", "ui")}
"""Imports allowed within a layer: ``healthchain ui`` starts the dashboard."""

RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

PACKAGES = sorted(
    path.parent.name
    for path in SOURCE.glob("*/__init__.py")
    if not path.parent.name.startswith("_")
)

# Imports `healthchain.<package>` and every module in it, without running
# healthchain/__init__.py (which re-exports from several packages), and prints which
# other healthchain packages got loaded. Alembic's migration scripts only run under it.
PROBE = """
import importlib, importlib.util, json, pkgutil, sys, types
package = sys.argv[1]
top = types.ModuleType("healthchain")
top.__path__ = list(importlib.util.find_spec("healthchain").submodule_search_locations)
sys.modules["healthchain"] = top
root = importlib.import_module("healthchain." + package)
for info in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
    if ".migrations" not in info.name:
        importlib.import_module(info.name)
loaded = {name.split(".")[1] for name in sys.modules if name.startswith("healthchain.")}
print(json.dumps(sorted(loaded - {package})))
"""


def allowed(importer: str, imported: str) -> bool:
    return RANK[imported] > RANK[importer] or (importer, imported) in SAME_LAYER


def loaded_by(package: str) -> set[str]:
    """The other healthchain packages that importing all of ``package`` loads."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, package], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return {name for name in json.loads(done.stdout) if not name.startswith("_")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_later(package: str) -> set[str]:
    """The healthchain packages ``package`` imports inside functions (lazily, at run time)."""
    found: set[str] = set()
    for path in (SOURCE / package).rglob("*.py"):
        if "migrations" not in path.parts:
            parts = list(path.relative_to(SOURCE.parent).parent.parts)  # its package
            _visit(ast.parse(path.read_text(encoding="utf-8")), parts, found, in_function=False)
    return {name for name in found if name != package and not name.startswith("_")}


def _visit(node: ast.AST, parts: list[str], found: set[str], *, in_function: bool) -> None:
    if isinstance(node, ast.If) and _is_type_checking(node):
        for child in node.orelse:
            _visit(child, parts, found, in_function=in_function)
        return
    if in_function and isinstance(node, ast.Import | ast.ImportFrom):
        for name in _absolute_names(node, parts):
            if name.startswith("healthchain."):
                found.add(name.split(".")[1])
    inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    for child in ast.iter_child_nodes(node):
        _visit(child, parts, found, in_function=inner)


def _absolute_names(node: ast.Import | ast.ImportFrom, parts: list[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        base = node.module or ""
    else:
        base = ".".join(parts[: len(parts) - node.level + 1])
        if node.module:
            base = f"{base}.{node.module}"
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def test_every_package_has_a_layer() -> None:
    assert set(PACKAGES) == set(RANK), (
        "add each healthchain package to LAYERS (and to DESIGN.md's diagram): "
        f"unplaced {sorted(set(PACKAGES) - set(RANK))}, gone {sorted(set(RANK) - set(PACKAGES))}"
    )


@pytest.fixture(scope="module")
def dependencies() -> dict[str, set[str]]:
    return {package: loaded_by(package) | imported_later(package) for package in PACKAGES}


def test_no_package_pair_imports_each_other(dependencies: dict[str, set[str]]) -> None:
    mutual = [
        (a, b)
        for a, b in combinations(PACKAGES, 2)
        if b in dependencies[a] and a in dependencies[b]
    ]
    assert mutual == []


def test_packages_import_only_the_layers_below(dependencies: dict[str, set[str]]) -> None:
    upward = {
        package: sorted(other for other in imported if not allowed(package, other))
        for package, imported in dependencies.items()
    }
    assert {package: names for package, names in upward.items() if names} == {}
