"""``healthchain ui`` serving for real: the console script in a subprocess, stopped by Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
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
