"""The documentation site cannot drift: its snippets run, its reference names every export.

Each page's ```python blocks run in order in one fresh interpreter (a page reads like a
notebook: a later block may use what an earlier one made), in a temporary directory, so
the relative ``experiments.db`` they write lands there. A block is left out only by a
marker on the line before it, ``<!-- docs-test: skip NAME (why) -->``, and the skipped
names are pinned below; ``<!-- docs-test: needs-postgres -->`` runs the page with
``HEALTHCHAIN_STORAGE_URI`` pointed at the test server.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers.postgres import postgres_url, reset_postgres

import healthchain as hc

DOCS = Path(__file__).parent.parent / "docs"
REFERENCE = DOCS / "reference"
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- docs-test: (.*?) -->\n\Z")
SKIP = re.compile(r"skip ([\w-]+) \((.+)\)")

# Every block the tests do not run, by name: adding one must be a visible decision.
SKIPPED = {"huggingface-summarizer"}

PACKAGES = [
    "tracking",
    "sandbox",
    "use_cases",
    "models",
    "pipeline",
    "data_generators",
    "ui",
    "cli",
]


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the block's first code line in the page, 1-based
    code: str
    marker: str | None


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = MARKER.search(text[: match.start()])
        line = text.count("\n", 0, match.start(1)) + 1
        found.append(Block(page, line, match.group(1), before.group(1) if before else None))
    return found


def guide_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if REFERENCE not in p.parents)


PAGES = [p for p in guide_pages() if blocks(p)]

# Runs each block compiled under the page's path with its own line numbers, so a
# traceback points at the page and line to fix.
RUNNER = """\
import sys
namespace = {"__name__": "__main__"}
for path, line, code in BLOCKS:
    print(f"--- {path}:{line}", flush=True)
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def relative(page: Path) -> str:
    return page.relative_to(DOCS.parent).as_posix()


@pytest.mark.parametrize("page", PAGES, ids=[relative(p) for p in PAGES])
def test_page_snippets_run(page: Path, tmp_path: Path) -> None:
    runnable, needs_postgres = [], False
    for block in blocks(page):
        if block.marker is None:
            runnable.append(block)
        elif block.marker == "needs-postgres":
            runnable.append(block)
            needs_postgres = True
        else:
            assert SKIP.fullmatch(block.marker), (
                f"{relative(page)}:{block.line}: unknown marker {block.marker!r}; "
                "write 'skip NAME (why)' or 'needs-postgres'"
            )
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHAIN_STORAGE_URI"}
    if needs_postgres:
        # From an empty database, as the page's reader starts: a test before this one on
        # the same xdist worker may have left it damaged on purpose (test_ui drops tables
        # under a running dashboard), and the page's writer would find it at head.
        env["HEALTHCHAIN_STORAGE_URI"] = url = postgres_url()
        asyncio.run(reset_postgres(url))
    sources = [(relative(b.page), b.line, b.code) for b in runnable]
    script = tmp_path / "run_page.py"
    script.write_text(f"BLOCKS = {sources!r}\n{RUNNER}", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    assert done.stdout.count("--- ") == len(runnable)  # each block ran, none returned early


def test_only_the_named_blocks_are_skipped() -> None:
    skipped = set()
    for page in guide_pages():
        for block in blocks(page):
            match = SKIP.fullmatch(block.marker or "")
            if match:
                skipped.add(match.group(1))
    assert skipped == SKIPPED


def test_the_guide_has_snippets_to_run() -> None:
    names = {relative(p) for p in PAGES}
    # the capability pages whose claims are code, and the seed's queries on their own page
    for page in ("tracking-async", "tracking-sync", "sandbox", "metrics", "querying", "sql"):
        assert f"docs/guide/{page}.md" in names
    sql = (DOCS / "guide" / "sql.md").read_text(encoding="utf-8")
    assert "## Using Python API" in sql
    assert "## Querying the Database Directly" in sql


def directives(page: Path) -> list[str]:
    return re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)


@pytest.mark.parametrize("package", PACKAGES)
def test_reference_documents_every_public_name(package: str) -> None:
    module = importlib.import_module(f"healthchain.{package}")
    documented = directives(REFERENCE / f"{package}.md")
    expected = [f"healthchain.{package}.{name}" for name in module.__all__]
    assert sorted(set(expected) - set(documented)) == [], "missing from the reference"
    assert sorted(set(documented) - set(expected)) == [], "documented but not exported"
    assert len(documented) == len(set(documented)), "documented twice"


def _reference_with_defaults() -> Any:
    """healthchain as the API reference loads it: griffe over src/ with the extension
    (docs/griffe_defaults.py) that mkdocs.yml configures."""
    import importlib.util

    import griffe

    spec = importlib.util.spec_from_file_location("griffe_defaults", DOCS / "griffe_defaults.py")
    assert spec is not None and spec.loader is not None
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    assert "docs/griffe_defaults.py:ConstantDefaults" in (DOCS.parent / "mkdocs.yml").read_text()
    return griffe.load(
        "healthchain",
        search_paths=[str(DOCS.parent / "src")],
        extensions=griffe.load_extensions(extension.ConstantDefaults()),
    )


def test_reference_signatures_show_the_settings_defaults_as_values() -> None:
    from dataclasses import fields

    from healthchain.tracking._settings import TrackerSettings

    package = _reference_with_defaults()
    defaults = TrackerSettings()
    for signature in (
        "tracking._tracker.AsyncExperimentTracker.__init__",
        "tracking._sync.ExperimentTracker.__init__",
        "sandbox._config.ExperimentConfig.__init__",
    ):
        shown = {p.name: str(p.default) for p in package[signature].parameters}
        expected = {
            f.name: repr(getattr(defaults, f.name)) for f in fields(defaults) if f.name in shown
        }
        assert len(expected) >= 4 and {k: shown[k] for k in expected} == expected, signature
    # An enum member stays as written: its name says more than its value.
    ends = package["tracking._tracker.AsyncExperimentTracker.end_experiment"]
    assert str(ends.parameters["status"].default) == "ExperimentStatus.COMPLETED"


def test_every_public_package_has_a_reference_page() -> None:
    import pkgutil

    public = {m.name for m in pkgutil.iter_modules(hc.__path__) if not m.name.startswith("_")}
    assert public == set(PACKAGES)
    pages = {p.stem for p in REFERENCE.glob("*.md")}
    assert pages == {*PACKAGES, "healthchain"}


def test_top_level_names_link_to_their_reference() -> None:
    page = (REFERENCE / "healthchain.md").read_text(encoding="utf-8")
    for name in hc.__all__:
        homes = [
            package
            for package in PACKAGES
            if getattr(importlib.import_module(f"healthchain.{package}"), name, None)
            is getattr(hc, name)
        ]
        assert homes, f"healthchain.{name} is exported by no subpackage"
        target = f"healthchain.{homes[0]}.{name}"
        assert f"| `hc.{name}` |" in page
        assert f"[{target}]" in page, f"healthchain.{name} does not link to {target}"
        assert target in directives(REFERENCE / f"{homes[0]}.md")


def leaf_commands(command: Any, path: str = "") -> list[tuple[str, Any]]:
    # Typer's commands are Click's or, in newer Typer, its own copy of them: duck-typed.
    if hasattr(command, "commands"):
        return [
            leaf
            for name, sub in command.commands.items()
            for leaf in leaf_commands(sub, f"{path} {name}".strip())
        ]
    return [(path, command)]


def test_cli_page_covers_every_command_and_option() -> None:
    from healthchain.cli import app

    page = (DOCS / "guide" / "cli.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    commands = leaf_commands(root)
    assert len(commands) >= 8
    for path, command in commands:
        heading = f"## `healthchain {path}"
        assert heading in page, f"no section for 'healthchain {path}'"
        section = page.split(heading, 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for option in param.opts:
                if option.startswith("--") and option != "--help":
                    assert f"`{option}" in section, f"'healthchain {path} {option}' undocumented"
    assert "## `healthchain --version`" in page


EXAMPLES = DOCS.parent / "examples"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_say_what_they_need_and_keep_the_working_directory(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    opening = "\n".join(text.splitlines()[:12])
    assert "Needs" in opening, f"{example.name}: say in its first lines which extra it needs"
    assert f"python examples/{example.name}" in text, f"{example.name}: say how to run it"
    assert "chdir" not in text, f"{example.name} changes the working directory"
    assert "print(" in text and ".resolve()" in text, f"{example.name}: print where files went"
    listed = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert f"`examples/{example.name}`" in listed, f"{example.name} missing from getting started"
