"""Cold start, MLflow: import mlflow, a fresh SQLite tracking store, first run created.
``_cold_mlflow.py DB_PATH OUT``; the parent times from spawn to ``committed``."""

import time

t0 = time.monotonic()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.entities import RunTag  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402

t_import = time.monotonic()

path = sys.argv[1]
store = SqlAlchemyStore(f"sqlite:///{path}", os.path.join(os.path.dirname(path), "artifacts"))
tags = {"environment": "production", "model": "model-0", "owner": "owner-0"}
store.create_run(
    "0",  # the Default experiment every fresh store has
    "bench",
    int(time.time() * 1000),
    [RunTag(k, v) for k, v in tags.items()],
    "first",
)
committed = time.monotonic()
with open(sys.argv[2], "w") as f:
    json.dump(
        {
            "t0": t0,
            "import_s": t_import - t0,
            "committed": committed,
            "version": mlflow.__version__,
        },
        f,
    )
