"""How a benchmark runs the subprocesses it measures, on a machine other processes share.

Each measurement runs in a fresh interpreter (:func:`run_child`: its result JSON, wall
time and peak RSS), with the CPU other processes took meanwhile measured (:class:`CpuWatch`),
after waiting for them to go quiet (:func:`wait_for_quiet`); :class:`Measurer` does all
three for a plan's measurements and says what runs; :func:`cold_start` times a fresh
interpreter to its first commit. Used by ``run.py``, ``bench_metrics.py`` and ``_pg_run.py``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from _harness import clock

__all__ = [
    "NOISY_CPUS",
    "Child",
    "CpuWatch",
    "Measurer",
    "cold_start",
    "run_child",
    "wait_for_quiet",
]

HERE = Path(__file__).resolve().parent

# Other processes using more than this many CPUs (of 2) during a measurement make it noisy.
NOISY_CPUS = 0.5


@dataclass
class Child:
    """Outcome of one benchmark subprocess."""

    result: dict[str, Any] | None
    wall_s: float
    peak_rss_mb: float
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """What the raw figures keep of it: its result (or error) and wall time."""
        return {"result": self.result, "wall_s": self.wall_s, "error": self.error}


class CpuWatch:
    """CPU used by *other* processes while a subprocess runs (the machine is shared).

    System-wide busy CPU time minus this process's and its waited-for children's, as
    an average number of CPUs; 0.0 means the benchmark had the machine to itself.
    """

    def __enter__(self) -> CpuWatch:
        self._t0 = time.monotonic()
        self._busy0 = self._busy()
        self._own0 = self._own()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        foreign = (self._busy() - self._busy0) - (self._own() - self._own0)
        self.foreign_cpus = max(0.0, foreign / elapsed)

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return (
            sum(t)
            - t.idle
            - getattr(t, "iowait", 0.0)
            - getattr(t, "guest", 0.0)
            - getattr(t, "guest_nice", 0.0)
        )

    @staticmethod
    def _own() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _child_env() -> dict[str, str]:
    """A measured subprocess's environment: no MLflow telemetry, no warnings on stderr."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}


def wait_for_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most ``limit_s``) until other processes use under ``threshold`` CPUs."""
    t0 = time.monotonic()
    while True:
        with CpuWatch() as watch:
            time.sleep(0.5)
        if watch.foreign_cpus < threshold or time.monotonic() - t0 > limit_s:
            return watch.foreign_cpus
        time.sleep(1.0)


def run_child(args: list[str], workdir: Path, timeout: float = 600) -> Child:
    """Run ``python <args> OUT`` ..., sampling its RSS with psutil; return its JSON result."""
    out = workdir / f"result-{time.monotonic_ns()}.json"
    script, *rest = args
    cmd = [sys.executable, str(HERE / script), *rest[:1], str(out), *rest[1:]]
    env = _child_env()
    peak = 0.0
    stop = threading.Event()
    watch = CpuWatch().__enter__()
    t0 = clock()
    with open(workdir / "stderr.txt", "w+") as err:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=err, stderr=err)

        def sample() -> None:
            nonlocal peak
            try:
                p = psutil.Process(proc.pid)
                while not stop.is_set():
                    peak = max(peak, p.memory_info().rss / 2**20)
                    stop.wait(0.02)
            except psutil.Error:
                pass

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        wall = clock() - t0
        stop.set()
        sampler.join()
        watch.__exit__()
        err.seek(0)
        stderr = err.read()
    if rc != 0 or not out.exists():
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        print(f"  !! {' '.join(args[:2])} failed (exit {rc}):\n{tail}", file=sys.stderr)
        return Child(None, wall, peak, error=f"exit {rc}: {tail.splitlines()[-1] if tail else ''}")
    result = json.loads(out.read_text())
    out.unlink()
    result["foreign_cpus"] = watch.foreign_cpus
    return Child(result, wall, peak)


def cold_start(script: str, workdir: Path) -> dict[str, float] | None:
    """Seconds from spawning a fresh interpreter to its first committed experiment."""
    sub = Path(tempfile.mkdtemp(dir=workdir))
    out = sub / "cold.json"
    env = _child_env()
    watch = CpuWatch().__enter__()
    t_spawn = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HERE / script), str(sub / "cold.db"), str(out)],
        cwd=sub,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    t_exit = time.monotonic()
    watch.__exit__()
    if proc.returncode != 0:
        print(f"  !! {script} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    r = json.loads(out.read_text())
    return {
        "spawn_to_commit_s": r["committed"] - t_spawn,
        "in_process_s": r["committed"] - r["t0"],
        "import_s": r["import_s"],
        "spawn_to_exit_s": t_exit - t_spawn,
        "foreign_cpus": watch.foreign_cpus,
    }


class Measurer:
    """Runs a plan's measured subprocesses one by one (:func:`run_child`), saying what runs
    and how long it took beside how much CPU other processes took meanwhile.

    Before each, it waits up to ``quiet_wait_s`` for the shared machine to go quiet; one
    that ran beside more than ``NOISY_CPUS`` of other work is measured again, the quieter
    of the two kept, until such repeats have taken ``retry_budget_s`` in all.
    """

    def __init__(self, workdir: Path, quiet_wait_s: float, retry_budget_s: float = 0.0) -> None:
        self.workdir = workdir
        self.quiet_wait_s = quiet_wait_s
        self.retry_budget_s = retry_budget_s
        self.retried = 0.0

    def __call__(self, label: str, args: list[str]) -> Child:
        """Run ``args`` (as :func:`run_child` takes them), printing ``label`` and the outcome."""
        print(f"  {label} ...", end=" ", flush=True)
        if self.quiet_wait_s:
            wait_for_quiet(self.quiet_wait_s)
        child = run_child(args, self.workdir)
        noise = child.result.get("foreign_cpus", 0.0) if child.result else 0.0
        if noise > NOISY_CPUS and self.retried < self.retry_budget_s:
            # Other processes took a good share of the 2 CPUs: measure once more and keep
            # the quieter of the two (the retry's load is reported either way).
            print(f"{child.wall_s:.1f} s, other processes {noise:.2f} CPUs: again ...", end=" ")
            t_retry = time.monotonic()
            wait_for_quiet(self.quiet_wait_s)
            again = run_child(args, self.workdir)
            self.retried += time.monotonic() - t_retry
            if again.result and again.result.get("foreign_cpus", 0.0) < noise:
                child = again
        busy = child.result.get("foreign_cpus", 0.0) if child.result else 0.0
        print(
            f"{child.wall_s:.1f} s (other processes: {busy:.2f} CPUs)"
            + (" FAILED" if child.error else ""),
            flush=True,
        )
        return child
