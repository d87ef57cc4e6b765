"""MLflow side of the benchmark, run in its own subprocess: ``_mlflow.py SCENARIO OUT OPTS``.

Uses MLflow's SQL tracking store directly (``SqlAlchemyStore`` on ``sqlite:///``): it is
what ``MlflowClient`` calls underneath, minus the client's argument wrapping, so it is
MLflow's fastest path to a SQLite file. The ``lifecycle`` scenario also times
``MlflowClient.create_run`` + ``set_terminated`` and the default rollback journal, for
reference. The store's file is switched to WAL (the tracker's journal mode) unless said
otherwise, which makes MLflow ~25 % faster here: the fairer, harder comparison.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import tempfile
import time
from typing import Any

from _child import emit, parse_args
from _data import PROJECT, list_metrics, mlflow_tags
from _harness import Stopwatch, clock, median
from _pg import analyze, pg_database

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities import RunStatus, RunTag, ViewType
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

FINISHED = RunStatus.FINISHED


def now_ms() -> int:
    return int(time.time() * 1000)


# The PostgreSQL database this subprocess made (``main``), when run against a server:
# every store of the scenario opens it instead of a SQLite file.
POSTGRES_URL: str | None = None


def store_uri(workdir: str, name: str) -> str:
    """The tracking URI of store ``name``: this subprocess's PostgreSQL database over
    psycopg2, else a SQLite file in ``workdir``."""
    if POSTGRES_URL:
        # Named: SQLAlchemy 2.1 takes plain postgresql:// to mean psycopg (3), not psycopg2.
        return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"sqlite:///{os.path.join(workdir, f'{name}.db')}"


def open_store(workdir: str, name: str, *, wal: bool = True) -> tuple[SqlAlchemyStore, str]:
    path = os.path.join(workdir, f"{name}.db")
    uri = store_uri(workdir, name)
    store = SqlAlchemyStore(uri, os.path.join(workdir, "artifacts"))
    if POSTGRES_URL:
        wal = False  # a SQLite journal mode
    if wal:
        con = sqlite3.connect(path)
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        store.engine.dispose()  # pooled connections reopen and see WAL
    experiment_id = store.create_experiment(PROJECT)
    return store, experiment_id


def lifecycle_once(store: SqlAlchemyStore, experiment_id: str, i: int) -> str:
    tags = [RunTag(k, v) for k, v in mlflow_tags(i).items()]
    run = store.create_run(experiment_id, "bench", now_ms(), tags, f"exp-{i}")
    store.update_run_info(run.info.run_id, FINISHED, now_ms(), None)
    run_id: str = run.info.run_id
    return run_id


def rate(n: int, fn: Any, start: int = 0) -> float:
    t0 = clock()
    for i in range(start, start + n):
        fn(i)
    return n / (clock() - t0)


def scenario_lifecycle(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    n, blocks, warmup = opts["n"], opts["blocks"], opts.get("warmup", 20)
    store, eid = open_store(workdir, "lifecycle")
    rate(warmup, lambda i: lifecycle_once(store, eid, i))
    store_rates = [
        rate(n, lambda i: lifecycle_once(store, eid, i), warmup + b * n) for b in range(blocks)
    ]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store_uri(workdir, "lifecycle"))

    def client_once(i: int) -> None:
        run = client.create_run(eid, tags=mlflow_tags(i), run_name=f"exp-{i}")
        client.set_terminated(run.info.run_id)

    rate(warmup, client_once)
    client_rate = rate(n, client_once, 10**6)

    result = {"store_rates": store_rates, "store_rate": median(store_rates),
              "client_rate": client_rate}  # fmt: skip
    if POSTGRES_URL:
        return result  # the rollback-journal figure is SQLite's
    store_d, eid_d = open_store(workdir, "lifecycle_delete", wal=False)
    rate(warmup, lambda i: lifecycle_once(store_d, eid_d, i))
    result["store_delete_journal_rate"] = rate(
        n, lambda i: lifecycle_once(store_d, eid_d, i), warmup
    )
    return result


def populate(
    store: SqlAlchemyStore,
    experiment_id: str,
    n: int,
    batch: int = 500,
    *,
    with_metrics: bool = False,
) -> None:
    """Write ``n`` finished runs with MLflow's own ORM rows, as ``create_run`` builds them.

    ``with_metrics``: each run also gets ``_data.list_metrics(i)`` as ``log_batch`` writes
    them, a history row and a latest-value row per key.

    ``create_run`` + ``set_terminated`` run at ~130/s here (80 s for 10,000), so the
    runs are added in batches through the store's own session and model classes:
    the same ``runs`` and ``tags`` rows (``mlflow.runName`` included), many per commit.
    """
    from mlflow.entities import LifecycleStage, SourceType
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun, SqlTag
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
    from mlflow.utils.uri import append_to_uri_path

    experiment = store.get_experiment(experiment_id)
    for lo in range(0, n, batch):
        with store.ManagedSessionMaker(read_only=False) as session:
            for i in range(lo, min(n, lo + batch)):
                run_id = f"{random.getrandbits(128):032x}"
                start = now_ms()
                run = SqlRun(
                    name=f"exp-{i}",
                    artifact_uri=append_to_uri_path(
                        experiment.artifact_location, run_id, SqlAlchemyStore.ARTIFACTS_FOLDER_NAME
                    ),
                    run_uuid=run_id,
                    experiment_id=experiment_id,
                    source_type=SourceType.to_string(SourceType.UNKNOWN),
                    source_name="",
                    entry_point_name="",
                    user_id="bench",
                    status=RunStatus.to_string(FINISHED),
                    start_time=start,
                    end_time=start + 1,
                    deleted_time=None,
                    source_version="",
                    lifecycle_stage=LifecycleStage.ACTIVE,
                )
                tags = {**mlflow_tags(i), MLFLOW_RUN_NAME: f"exp-{i}"}
                run.tags = [SqlTag(key=k, value=v) for k, v in tags.items()]
                session.add(run)
                for key, value in (list_metrics(i) if with_metrics else {}).items():
                    for model in (SqlMetric, SqlLatestMetric):
                        session.add(
                            model(key=key, value=value, timestamp=start, step=0, is_nan=False,
                                  run_uuid=run_id)
                        )  # fmt: skip


def search_all(store: SqlAlchemyStore, experiment_id: str, page: int) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        got = store.search_runs(
            [experiment_id],
            "tags.environment = 'production'",
            ViewType.ACTIVE_ONLY,
            max_results=page,
            page_token=token,
        )
        runs.extend(got)
        token = got.token
        if not token:
            return runs


def scenario_data(opts: dict[str, Any], workdir: str) -> dict[str, Any]:
    n, reps, gets = opts["n"], opts["reps"], opts["gets"]
    store, eid = open_store(workdir, "data")
    t_pop = clock()
    populate(store, eid, n)
    t_pop = clock() - t_pop
    # A run written through the API reads back like the bulk ones (sanity check).
    api_run = store.get_run(lifecycle_once(store, eid, n))
    bulk_run = store.search_runs([eid], "tags.team = 'team-000'", ViewType.ALL, max_results=1)[0]
    assert set(api_run.data.tags) == set(bulk_run.data.tags), (api_run, bulk_run)
    assert api_run.info.status == bulk_run.info.status == "FINISHED"
    analyze(POSTGRES_URL)  # as the tracker's database is: see _pg.analyze

    page = opts.get("page", 50000)
    expected_matches = (n + 1 + 2) // 3
    watch = Stopwatch()
    for _ in range(reps + 1):
        with watch:
            runs = search_all(store, eid, page)
        assert len(runs) == expected_matches, (len(runs), expected_matches)

    run_ids = [r.info.run_id for r in runs]
    rng = random.Random(1)
    picks = [rng.choice(run_ids) for _ in range(gets + 20)]
    for rid in picks[:20]:
        store.get_run(rid)
    t0 = clock()
    for rid in picks[20:]:
        store.get_run(rid)
    get_us = (clock() - t0) / gets * 1e6
    return {
        "populate_s": t_pop,
        "search_s": median(watch.measured),
        "search_times": watch.measured,
        "matches": len(runs),
        "get_run_us": get_us,
    }


def main() -> None:
    global POSTGRES_URL
    scenario, out, opts = parse_args()
    run = {"lifecycle": scenario_lifecycle, "data": scenario_data}[scenario]
    with (
        tempfile.TemporaryDirectory(prefix="bench-mlflow-", dir=opts.get("tmp")) as workdir,
        pg_database(opts, f"mlflow_{scenario}") as POSTGRES_URL,
    ):
        result = run(opts, workdir)
    import mlflow

    result["mlflow_version"] = mlflow.__version__
    emit(out, result)


if __name__ == "__main__":
    main()
