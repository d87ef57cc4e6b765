"""The built wheel and sdist, as users get them: built once, checked as PyPI checks them,
and the wheel installed (not editable) into a fresh virtualenv that runs a smoke test.

No network: the build runs without isolation (hatchling is a dev dependency), and the
virtualenv reaches the test environment's installed dependencies through a ``.pth`` line
naming a folder of links to them, healthchain's own files and metadata left out, so what
imports there as ``healthchain`` can only come from the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# The smoke test the installed wheel runs: a tracker on a fresh SQLite file (so the
# migrations ship), a dashboard page and a static file through the ASGI app in-process
# (templates and static files ship), py.typed, and where each came from.
SMOKE = """
import asyncio, json, sys
from importlib import metadata
from pathlib import Path

import httpx
import healthchain as hc
from healthchain.ui import create_app

db = Path(sys.argv[1])
with hc.ExperimentTracker(f"sqlite:///{db}", project_name="wheel") as tracker:
    with tracker.track("smoke", tags={"from": "wheel"}) as experiment_id:
        tracker.log_metric(experiment_id, "acc", 0.5)
    status = str(tracker.get_experiment(experiment_id).status)


async def pages():
    app = create_app(f"sqlite:///{db}")
    async with app.router.lifespan_context(app) as state:

        async def served(scope, receive, send):
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            page = await c.get("/")
            css = await c.get("/static/app.css")
            chart = await c.get("/static/vendor/uPlot.iife.min.js")
    return page, css, chart


page, css, chart = asyncio.run(pages())
package = Path(hc.__file__).parent
print(json.dumps({
    "file": hc.__file__,
    "dist": str(metadata.distribution("healthchain").locate_file("")),
    "version": hc.__version__,
    "status": status,
    "experiment_id": experiment_id,
    "page": [page.status_code, page.headers["content-type"], page.text],
    "css": [css.status_code, len(css.content)],
    "chart": [chart.status_code, len(chart.content)],
    "py_typed": (package / "py.typed").is_file(),
}))
"""


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Installed:
    python: Path
    scripts: Path
    site_packages: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``python -m build`` once: the sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("healthchain-*.whl")
    (sdist,) = out.glob("healthchain-*.tar.gz")
    return Built(wheel, sdist)


def _dependency_links(into: Path) -> Path:
    """A folder of links to every installed distribution but healthchain's own."""
    site = Path(metadata.distribution("sqlalchemy").locate_file(""))
    into.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.endswith(".pth") or "healthchain" in name:
            continue
        (into / entry.name).symlink_to(entry)
    return into


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtualenv (no system site-packages) with the wheel installed, not editable."""
    root = tmp_path_factory.mktemp("wheel-venv")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    scripts = env_dir / "bin"
    python = scripts / "python"
    paths = sysconfig.get_paths(vars={"base": str(env_dir), "platbase": str(env_dir)})
    site_packages = Path(paths["purelib"])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python)),
            *("install", "--no-deps", "--no-index", "--no-cache-dir", "-q", str(built.wheel)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    links = _dependency_links(root / "dependencies")
    (site_packages / "zz_test_dependencies.pth").write_text(f"{links}\n")
    return Installed(python, scripts, site_packages)


def test_wheel_and_sdist_pass_twine_check_strict(built: Built) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.wheel), str(built.sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_wheel_ships_the_package_data_and_metadata(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    for shipped in (
        "healthchain/py.typed",
        "healthchain/tracking/migrations/versions/0001_initial_schema.py",
        "healthchain/tracking/migrations/script.py.mako",
        "healthchain/ui/templates/base.html",
        "healthchain/ui/static/app.css",
        "healthchain/ui/static/vendor/uPlot.iife.min.js",
    ):
        assert shipped in names, sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "src/"))]
    (info,) = {n.split("/")[0] for n in names if ".dist-info/" in n}
    assert f"{info}/licenses/LICENSE" in names
    wheel_metadata = zipfile.ZipFile(built.wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in wheel_metadata
    for python in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {python}" in wheel_metadata
    # No upper cap on SQLAlchemy: 2.0 and 2.1 are both supported.
    (requirement,) = [
        line for line in wheel_metadata.splitlines() if line.startswith("Requires-Dist: sqlalchemy")
    ]
    assert "<" not in requirement, requirement


def test_sdist_holds_the_sources_and_nothing_a_local_run_left(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    tops = {name.split("/")[0] for name in names}
    assert tops == {
        *("src", "tests", "examples", "bench", "noxfile.py", "README.md", "CHANGELOG.md"),
        *("LICENSE", "pyproject.toml", "PKG-INFO", ".gitignore"),
    }, tops
    assert "src/healthchain/tracking/migrations/versions/0001_initial_schema.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".db", ".pyc"))]


def test_installed_wheel_tracks_serves_the_dashboard_and_is_typed(
    installed: Installed, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(installed.python), "-c", SMOKE, str(tmp_path / "experiments.db")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # healthchain and its metadata come from the wheel in the virtualenv, nowhere else.
    assert Path(seen["file"]).is_relative_to(installed.site_packages), seen["file"]
    assert Path(seen["dist"]) == installed.site_packages
    assert seen["version"] == metadata.version("healthchain")
    assert seen["status"] == "COMPLETED"
    status, content_type, html = seen["page"]
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert seen["experiment_id"][:8] in html and "smoke" in html
    assert seen["css"][0] == 200 and seen["css"][1] > 0
    assert seen["chart"][0] == 200 and seen["chart"][1] > 10_000
    assert seen["py_typed"] is True


def test_installed_wheel_console_script_prints_the_version(installed: Installed) -> None:
    done = subprocess.run(
        [str(installed.scripts / "healthchain"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"healthchain {metadata.version('healthchain')}\n"


def test_installed_wheel_has_every_requirement_met(installed: Installed) -> None:
    # pip check, offline, in the virtualenv: the wheel's Requires-Dist (extras aside)
    # against what is installed there, so a dependency dropped from or mis-pinned in
    # pyproject.toml shows up here rather than at a user's import.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(installed.python), "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "No broken requirements found.\n", done.stdout
