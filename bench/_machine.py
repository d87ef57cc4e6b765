"""Where and when a benchmark ran: the machine, the sources measured and the date.

:func:`machine` is collected before the run and completed by :func:`finish` after it;
:func:`machine_section` is the markdown every results file ends with. Re-exported by
:mod:`_harness`, which scripts import it from. Stdlib only, imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["finish", "machine", "machine_section", "source_state"]

HERE = Path(__file__).resolve().parent


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _cpu_model() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def source_state() -> tuple[str, str]:
    """The git commit measured (noting uncommitted changes under src/), and a hash of the
    package's sources, to notice an edit in the middle of a run."""
    import hashlib
    import subprocess

    root = HERE.parent
    digest = hashlib.sha256()
    for path in sorted((root / "src" / "healthchain").rglob("*.py")):
        digest.update(path.read_bytes())
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "src"], capture_output=True, text=True, check=True
        ).stdout.strip()
        described = commit + (" + uncommitted changes under src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        described = "unknown (not a git checkout)"
    return described, digest.hexdigest()[:12]


def _versions(dists: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


_DISTS = ("healthchain", "sqlalchemy", "aiosqlite", "alembic", "anyio")


def machine(extra_dists: Iterable[str] = ()) -> dict[str, Any]:
    """Where and when a run happens; call before measuring, then :func:`finish` after."""
    import os
    import platform
    import sqlite3
    import sys

    commit, sources = source_state()
    return {
        "started": _utc_now(),
        "started_monotonic": time.monotonic(),
        "commit": commit,
        "sources": sources,
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "os": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "versions": _versions([*_DISTS, *extra_dists]),
    }


def finish(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` completed after the run: end time, elapsed, load, whether sources changed."""
    import os

    meta["finished"] = _utc_now()
    meta["elapsed"] = time.monotonic() - meta["started_monotonic"]
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["sources_changed"] = source_state()[1] != meta["sources"]
    return meta


def machine_section(meta: dict[str, Any]) -> list[str]:
    """The markdown lines every results file ends with: the machine and the date."""
    ram = "" if meta["ram_gib"] is None else f"; {meta['ram_gib']:.0f} GiB RAM"
    changed = meta.get("sources_changed")
    return [
        "## Machine",
        "",
        f"- Measured {meta['started']} → {meta.get('finished', '?')} "
        f"({meta.get('elapsed', 0):.0f} s) at healthchain {meta['commit']}"
        + (" — **its sources changed during the run: figures mix versions**" if changed else ""),
        f"- CPU: {meta['cpu']}, {meta['cpus']} logical CPUs{ram}; load average before/after: "
        f"{meta['load_before']} / {meta.get('load_after', '?')} (the machine may be shared)",
        f"- {meta['os']}; Python {meta['python']} ({meta['executable']}); SQLite {meta['sqlite']}",
        "- " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
    ]
