"""MLflow side of ``bench_metrics.py``, one scenario per subprocess:
``_metrics_mlflow.py SCENARIO OUT OPTS``.

Everything goes through ``MlflowClient`` (what users call) on a ``sqlite:///`` file of its
own, switched to WAL like every MLflow file of these benchmarks (``_mlflow.open_store``).
Each scenario logs to one run, as a training or evaluation loop does. Scenarios:
``log_metric`` (one point per call), ``log_batch`` (1,000 points per call: the 10 keys
of ``METRIC_KEYS`` at 100 steps), ``history`` (``get_metric_history`` of a key with N
points) and ``search`` (``search_runs`` filtering on ``acc`` and ordering by ``p95_ms``
over N runs).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import _mlflow
from _child import emit, parse_args
from _data import METRIC_KEYS, PROJECT, measured, point_value
from _harness import Stopwatch, clock
from _mlflow import open_store, populate
from _pg import analyze, pg_database

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities import Metric, ViewType
from mlflow.tracking import MlflowClient

SEARCH_FILTER = "metrics.acc > 0.5"
SEARCH_ORDER = ["metrics.p95_ms ASC"]
BATCH = 1000  # MLflow's limit of metrics per log_batch call


def now_ms() -> int:
    return int(time.time() * 1000)


def open_client(workdir: str) -> tuple[MlflowClient, str]:
    """A client on a fresh WAL file with the bench experiment, and that experiment's id."""
    store, experiment_id = open_store(workdir, "metrics")
    store.engine.dispose()
    return MlflowClient(tracking_uri=_mlflow.store_uri(workdir, "metrics")), experiment_id


def new_run(client: MlflowClient, experiment_id: str) -> str:
    run_id: str = client.create_run(experiment_id, run_name="metrics").info.run_id
    return run_id


def batch_points(lo_step: int, steps: int, keys: tuple[str, ...]) -> list[Metric]:
    ts = now_ms()
    return [
        Metric(key, point_value(step), ts, step)
        for step in range(lo_step, lo_step + steps)
        for key in keys
    ]


def scenario_log_metric(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Points per second, one ``log_metric`` per point, one after another."""
    n, blocks, warmup = opts["n"], opts["blocks"], opts.get("warmup", 20)
    client, experiment_id = open_client(workdir)
    run_id = new_run(client, experiment_id)
    watch = Stopwatch()
    for size in (warmup, *[n] * blocks):
        with watch:
            for step in range(size):
                client.log_metric(run_id, "loss", point_value(step), step=step)
    return watch.rates(n)


def scenario_log_batch(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Points per second, ``log_batch`` of 1,000 points (10 keys x 100 steps) per call."""
    batches, blocks = opts["batches"], opts["blocks"]
    steps = BATCH // len(METRIC_KEYS)
    client, experiment_id = open_client(workdir)
    run_id = new_run(client, experiment_id)
    watch = Stopwatch()
    step = 0
    for calls in (1, *[batches] * blocks):  # one call warms up
        with watch:
            for _ in range(calls):
                client.log_batch(run_id, metrics=batch_points(step, steps, METRIC_KEYS))
                step += steps
    return watch.rates(batches * BATCH)


def scenario_history(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Seconds per ``get_metric_history`` of one key with ``n`` points."""
    n, reps = opts["n"], opts["reps"]
    client, experiment_id = open_client(workdir)
    run_id = new_run(client, experiment_id)
    for lo in range(0, n, BATCH):
        client.log_batch(run_id, metrics=batch_points(lo, min(BATCH, n - lo), ("loss",)))
    watch = Stopwatch()
    for _ in range(reps + 1):
        with watch:
            history = client.get_metric_history(run_id, "loss")
        assert len(history) == n, (len(history), n)
    return {**watch.summary(), "points": n}


def scenario_search(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Seconds per ``search_runs`` filtering on ``acc`` ordered by ``p95_ms`` over ``n`` runs,
    every match fetched (one page)."""
    n, reps = opts["n"], opts["reps"]
    store, experiment_id = open_store(workdir, "search")
    populate(store, experiment_id, n)  # runs with the tags of _data, as create_run builds them
    store.engine.dispose()
    client = MlflowClient(tracking_uri=_mlflow.store_uri(workdir, "search"))
    runs = client.search_runs([experiment_id], max_results=50000)
    t_log = clock()
    for run in runs:
        i = int(run.info.run_name.removeprefix("exp-"))
        ts = now_ms()
        metrics = [Metric(k, v, ts, 0) for k, v in measured(i).items()]
        client.log_batch(run.info.run_id, metrics=metrics)
    t_log = clock() - t_log
    analyze(_mlflow.POSTGRES_URL)  # as the tracker's database is: see _pg.analyze
    expected = sum(1 for i in range(n) if measured(i)["acc"] > 0.5)
    watch = Stopwatch()
    for _ in range(reps + 1):
        with watch:
            found = client.search_runs(
                [experiment_id], SEARCH_FILTER, ViewType.ACTIVE_ONLY, 50000, SEARCH_ORDER
            )
        assert len(found) == expected, (len(found), expected)
    return {
        **watch.summary(),
        "matches": len(found),
        "first": [run.info.run_name for run in found[:20]],
        "log_metrics_s": t_log,
        "experiment": PROJECT,
    }


SCENARIOS = {
    "log_metric": scenario_log_metric,
    "log_batch": scenario_log_batch,
    "history": scenario_history,
    "search": scenario_search,
}


def main() -> None:
    scenario, out, opts = parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-mlflow-", dir=opts.get("tmp")) as workdir,
        pg_database(opts, f"mlflow_{scenario}") as _mlflow.POSTGRES_URL,
    ):
        result = SCENARIOS[scenario](opts, workdir)
    import mlflow

    result["mlflow_version"] = mlflow.__version__
    emit(out, result)


if __name__ == "__main__":
    main()
