"""``healthchain ui`` serving for real: the console script in a subprocess, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from healthchain.tracking import ExperimentTracker

pytestmark = pytest.mark.slow


def test_ui_serves_the_dashboard_until_interrupted(storage_uri: str, tmp_path: Path) -> None:
    with (
        ExperimentTracker(storage_uri, project_name="served") as tracker,
        tracker.track("visible-run", tags={"env": "ci"}) as experiment_id,
    ):
        pass
    env = {**os.environ, "HEALTHCHAIN_STORAGE_URI": storage_uri}
    with subprocess.Popen(
        [sys.executable, "-m", "healthchain.cli", "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as server:
        try:
            assert server.stdout is not None
            banner = server.stdout.readline()  # printed once the socket listens
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
            assert match, banner
            with httpx.Client(base_url=match.group(0), timeout=10) as client:
                page = client.get("/")
                detail = client.get(f"/experiments/{experiment_id}")
                # A page elsewhere reaching 127.0.0.1 through its own DNS name is refused.
                rebound = client.get("/", headers={"Host": "attacker.example"})
            assert page.status_code == 200 and experiment_id in page.text
            assert "visible-run" in detail.text
            assert rebound.status_code == 400
        finally:
            server.send_signal(signal.SIGINT)
            _, stderr = server.communicate(timeout=30)
    assert server.returncode in (0, 130), stderr
    assert "Traceback" not in stderr


@contextmanager
def serving(
    storage_uri: str, cwd: Path, *options: str
) -> Iterator[tuple[str, int, subprocess.Popen[str]]]:
    """``healthchain ui --port 0 OPTIONS`` running; yields its URL, port and process."""
    with subprocess.Popen(
        [sys.executable, "-m", "healthchain.cli", "ui", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HEALTHCHAIN_STORAGE_URI": storage_uri},
        cwd=cwd,
    ) as server:
        try:
            assert server.stdout is not None and server.stderr is not None
            banner = server.stdout.readline()  # printed once the socket listens
            match = re.search(r"http://\S+:(\d+)/", banner)
            assert match, (banner, server.stderr.read() if server.poll() is not None else "")
            yield match.group(0), int(match.group(1)), server
        finally:
            server.send_signal(signal.SIGINT)
            _, stderr = server.communicate(timeout=30)
    assert server.returncode in (0, 130), stderr
    assert "Traceback" not in stderr


def status_for(address: str, port: int, host: str) -> int:
    """The status of ``GET /`` sent to ``address:port`` with this Host header."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"http://{address}:{port}/", headers={"Host": host}).status_code


@pytest.fixture
def recorded_uri(storage_uri: str) -> str:
    with ExperimentTracker(storage_uri) as tracker, tracker.track("visible-run"):
        pass
    return storage_uri


@pytest.mark.parametrize(("bind", "address"), [("0.0.0.0", "127.0.0.1"), ("::", "[::1]")])
def test_wildcard_bind_keeps_the_host_check(
    recorded_uri: str, tmp_path: Path, bind: str, address: str
) -> None:
    with serving(recorded_uri, tmp_path, "--host", bind) as (_, port, _server):
        # A page elsewhere whose DNS name was rebound to this machine is refused.
        assert status_for(address, port, f"evil.example:{port}") == 400
        assert status_for(address, port, "dash.example.org") == 400
        assert status_for(address, port, f"localhost:{port}") == 200

    extra = ("--allow-host", "dash.example.org", "--allow-host", "10.1.2.3")
    with serving(recorded_uri, tmp_path, "--host", bind, *extra) as (_, port, _server):
        assert status_for(address, port, "evil.example") == 400
        # Loopback, the bound address and the names given are served.
        for host in (
            f"localhost:{port}",
            f"127.0.0.1:{port}",
            "127.9.9.9",
            f"[::1]:{port}",
            f"dash.example.org:{port}",
            "DASH.example.org.",
            f"10.1.2.3:{port}",
            f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}",
        ):
            assert status_for(address, port, host) == 200, host
        assert status_for(address, port, "other.example.org") == 400


def test_non_loopback_bind_warns_to_allow_the_names_clients_use(
    recorded_uri: str, tmp_path: Path
) -> None:
    with serving(recorded_uri, tmp_path, "--host", "0.0.0.0") as (_, _port, server):
        assert server.stderr is not None
        warning = server.stderr.readline()  # printed before the banner
    assert warning.startswith("warning: serving on 0.0.0.0")
    assert "add --allow-host NAME" in warning and "localhost" in warning


def test_loopback_bind_other_than_127_0_0_1_serves_its_own_url(
    recorded_uri: str, tmp_path: Path
) -> None:
    with serving(recorded_uri, tmp_path, "--host", "127.0.0.2") as (url, port, _):
        assert url == f"http://127.0.0.2:{port}/"
        with httpx.Client(timeout=10) as client:
            page = client.get(url)  # the Host header is the URL's own: 127.0.0.2:PORT
        assert page.status_code == 200 and "visible-run" in page.text
        assert status_for("127.0.0.2", port, "evil.example") == 400
        assert status_for("127.0.0.2", port, f"localhost:{port}") == 200


def test_bad_host_names_are_a_usage_error_before_serving(recorded_uri: str, tmp_path: Path) -> None:
    for option, bad in (
        ("--allow-host", "*"),  # the check cannot be switched off
        ("--allow-host", "dash.example.org:8765"),
        ("--allow-host", "http://dash.example.org"),
        ("--allow-host", ""),
        ("--host", "bad host"),
    ):
        process = subprocess.run(
            [sys.executable, "-m", "healthchain.cli", "ui", "--port", "0", option, bad],
            capture_output=True,
            text=True,
            env={**os.environ, "HEALTHCHAIN_STORAGE_URI": recorded_uri},
            cwd=tmp_path,
            check=False,
            timeout=60,
        )
        # Click's usage report, before anything is served: the error is its last line.
        assert process.returncode == 2, process.stderr
        lines = process.stderr.splitlines()
        assert lines[0] == "Usage: healthchain ui [OPTIONS]", lines
        assert lines[-1].startswith("Error: "), lines
        assert option in lines[-1] and repr(bad) in lines[-1], lines
