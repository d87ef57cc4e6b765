"""Dashboard benchmark: server time of the experiments list page at 10,000 experiments
with 5 metrics each, against MLflow's ``search_runs`` answering the same query (same
filter and order: newest first, or by a metric; one page of 50). Writes ``bench/RESULTS_ui.md``::

    python bench/bench_ui.py [--n 10000] [--repeat 40] [--mlflow-python PATH]
    python bench/bench_ui.py --quick   # smoke run: prints the table (add --out to write it)

Ours: the page as the dashboard serves it (filters parsed, the tracker queried, the
Jinja2 template rendered, the chart's JSON embedded), requested in-process through
``httpx.ASGITransport`` from a freshly started app. *Server time* is the app's ASGI call,
from receiving the request to sending the last byte of the body; the in-process round
trip (adding httpx's own work) is shown beside it. No network or browser time counts.
MLflow runs in its own interpreter (it is not a dependency of ours): by default a venv
under ``bench/_work/ui`` with ``mlflow-skinny``, created on first use; its 10,000 runs
are written the way ``bench/_mlflow.py`` writes them (its own ORM rows, the same tags).
MLflow's store (``SqlAlchemyStore.search_runs``, its fastest path, on a WAL file) is the
headline comparison; ``MlflowClient.search_runs``, what users call, is shown beside it.
Requests of the different queries are interleaved; each figure is a median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from _harness import clock, finish, machine, machine_section, median, results_path, write_results

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "ui"
RESULTS = HERE / "RESULTS_ui.md"
PAGE = 50
TARGET = 0.1


class Query(NamedTuple):
    """One list page: ours as its query string and as the tracker call behind it, and
    MLflow's ``search_runs`` with the same filter and order."""

    label: str
    params: dict[str, Any]
    mlflow_filter: str
    offset: int = 0
    mlflow_order: str = "attributes.start_time DESC"
    filters: dict[str, Any] | None = None
    order_by: str | None = None


_PRODUCTION = {"tags": {"environment": "production"}}
QUERIES: list[Query] = [
    Query("newest 50, no filter", {}, ""),
    Query(
        "tag environment=production (1 in 3), newest 50",
        {"tag": "environment=production"},
        "tags.environment = 'production'",
        filters=_PRODUCTION,
    ),
    Query(
        "tag team=team-042 (1 in 100), newest 50",
        {"tag": "team=team-042"},
        "tags.team = 'team-042'",
        filters={"tags": {"team": "team-042"}},
    ),
    Query(
        "tag environment=production, 5th page (rows 201-250)",
        {"tag": "environment=production", "page": 5},
        "tags.environment = 'production'",
        200,
        filters=_PRODUCTION,
    ),
    Query(
        "ordered by metric acc, best 50",
        {"sort": "-metrics.acc"},
        "",
        mlflow_order="metrics.acc DESC",
        order_by="-metrics.acc",
    ),
    Query(
        "metric acc>0.5 (1 in 2), ordered by acc, best 50",
        {"metric": "acc>0.5", "sort": "-metrics.acc"},
        "metrics.acc > 0.5",
        mlflow_order="metrics.acc DESC",
        filters={"metrics": {"acc": (">", 0.5)}},
        order_by="-metrics.acc",
    ),
    Query(
        "tag environment=production, ordered by loss ascending, 5th page",
        {"tag": "environment=production", "sort": "metrics.loss", "page": 5},
        "tags.environment = 'production'",
        200,
        mlflow_order="metrics.loss ASC",
        filters=_PRODUCTION,
        order_by="metrics.loss",
    ),
]


# --- MLflow side (runs in the MLflow venv) -----------------------------------------------


def mlflow_side(n: int, repeat: int, out: str) -> None:
    """Populate MLflow's store with ``n`` runs and time ``search_runs`` for each query."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    sys.path.insert(0, str(HERE))
    import mlflow
    from _mlflow import open_store, populate
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient
    from mlflow.utils.search_utils import SearchUtils

    with tempfile.TemporaryDirectory(prefix="bench-ui-mlflow-", dir=WORK) as workdir:
        store, experiment_id = open_store(workdir, "ui")
        populate(store, experiment_id, n, with_metrics=True)
        client = MlflowClient(tracking_uri=f"sqlite:///{workdir}/ui.db")

        def via_store(q: Query) -> int:
            token = SearchUtils.create_page_token(q.offset) if q.offset else None
            runs = store.search_runs(
                [experiment_id], q.mlflow_filter, ViewType.ACTIVE_ONLY, max_results=PAGE,
                order_by=[q.mlflow_order], page_token=token,
            )  # fmt: skip
            return len(runs)

        def via_client(q: Query) -> int:
            token = SearchUtils.create_page_token(q.offset) if q.offset else None
            runs = client.search_runs(
                [experiment_id], q.mlflow_filter, max_results=PAGE,
                order_by=[q.mlflow_order], page_token=token,
            )  # fmt: skip
            return len(runs)

        times: dict[str, dict[str, list[float]]] = {
            q.label: {"store": [], "client": []} for q in QUERIES
        }
        for round_ in range(repeat + 2):
            for q in QUERIES:
                for side, fn in (("store", via_store), ("client", via_client)):
                    t0 = clock()
                    got = fn(q)
                    elapsed = clock() - t0
                    assert got == PAGE, (q.label, side, got)
                    if round_ >= 2:  # two warm-up rounds
                        times[q.label][side].append(elapsed)
        store.engine.dispose()
    Path(out).write_text(
        json.dumps({"version": mlflow.__version__, "times": times}), encoding="utf-8"
    )


def mlflow_python(given: str | None) -> str:
    """The MLflow interpreter: the one given, or a venv under bench/_work/ui made once."""
    if given:
        return given
    venv = WORK / "mlflow-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with mlflow-skinny (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "mlflow-skinny", "sqlalchemy", "alembic"],
            check=True,
        )
    return str(python)


# --- our side ------------------------------------------------------------------------------


async def populate_ours(storage_uri: str, n: int) -> None:
    sys.path.insert(0, str(HERE))
    from _data import PROJECT, list_metrics, spec

    from healthchain.tracking import AsyncExperimentTracker

    async with AsyncExperimentTracker(storage_uri, project_name=PROJECT) as tracker:

        async def one(i: int) -> None:
            experiment_id = await tracker.start_experiment(**spec(i))
            await tracker.log_metrics(experiment_id, list_metrics(i))
            await tracker.end_experiment(experiment_id)

        for lo in range(0, n, 500):
            await asyncio.gather(*(one(i) for i in range(lo, min(n, lo + 500))))


async def measure_ours(storage_uri: str, repeat: int) -> dict[str, dict[str, list[float]]]:
    from _data import PROJECT
    from _served import served_dashboard

    times: dict[str, dict[str, list[float]]] = {
        q.label: {"server": [], "page": [], "list": []} for q in QUERIES
    }
    async with served_dashboard(storage_uri) as (client, tracker, server_times):
        for round_ in range(repeat + 2):
            for q in QUERIES:
                query = {"project": PROJECT, **q.params}
                t0 = clock()
                response = await client.get("/", params=query)
                page_s = clock() - t0
                assert response.status_code == 200, response.text
                assert response.text.count('class="name"') == PAGE, q.label
                filters = {"project": PROJECT, **(q.filters or {})}
                t0 = clock()
                rows = await tracker.list_experiments(
                    filters, limit=PAGE + 1, offset=q.offset, order_by=q.order_by
                )
                list_s = clock() - t0
                assert len(rows) == PAGE + 1
                if round_ >= 2:
                    times[q.label]["server"].append(server_times[-1])
                    times[q.label]["page"].append(page_s)
                    times[q.label]["list"].append(list_s)
    return times


def ms(values: list[float]) -> float:
    return median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke variant")
    parser.add_argument("--n", type=int, default=None, help="experiments (default 10,000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 40)")
    parser.add_argument("--mlflow-python", help="an interpreter with mlflow-skinny installed")
    parser.add_argument("--mlflow-side", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--out", type=Path, help="where to write (default bench/RESULTS_ui.md; --quick: nowhere)"
    )
    args = parser.parse_args()
    args.n = args.n or (6_000 if args.quick else 10_000)  # the 1 % query needs 51 rows
    args.repeat = args.repeat or (3 if args.quick else 40)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.mlflow_side:
        mlflow_side(args.n, args.repeat, args.mlflow_side)
        return

    sys.path.insert(0, str(HERE))
    meta = machine(["mlflow-skinny", "httpx", "starlette", "jinja2"])
    python = mlflow_python(args.mlflow_python)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ui-", dir=WORK))
    try:
        storage_uri = f"sqlite:///{workdir / 'ours.db'}"
        t0 = clock()
        asyncio.run(populate_ours(storage_uri, args.n))
        print(f"ours: {args.n} experiments written in {clock() - t0:.1f} s")
        ours = asyncio.run(measure_ours(storage_uri, args.repeat))
        mlflow_out = workdir / "mlflow.json"
        t0 = clock()
        subprocess.run(
            [python, __file__, "--n", str(args.n), "--repeat", str(args.repeat),
             "--mlflow-side", str(mlflow_out)],
            check=True, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )  # fmt: skip
        print(f"mlflow: populated and measured in {clock() - t0:.1f} s")
        theirs = json.loads(mlflow_out.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = render(args, ours, theirs, finish(meta))
    write_results(results_path(args.out, args.quick, RESULTS), report)


def render(
    args: argparse.Namespace, ours: dict[str, Any], theirs: dict[str, Any], meta: dict[str, Any]
) -> str:
    lines = [
        "# Dashboard benchmark",
        "",
        f"`python bench/bench_ui.py --n {args.n} --repeat {args.repeat}`: {args.n:,} "
        f"experiments (tags and 5 metrics each from `bench/_data.py`), the list page of "
        f"{PAGE} rows in project `bench`, newest first or ordered by a metric (`?sort=`), "
        "its metric and param columns shown. *Server* is the dashboard's server time for the whole "
        "HTML page (filters, query, template, chart JSON): the app's ASGI call, from the "
        "request received to the last body byte sent. *Round trip* adds httpx's in-process "
        "client (`httpx.ASGITransport`). *List* is the tracker's `list_experiments` alone. "
        f"MLflow {theirs['version']}: `SqlAlchemyStore.search_runs` "
        "(WAL file) and `MlflowClient.search_runs`, `max_results=50`, "
        "the same filter and `order_by` (`attributes.start_time DESC` or `metrics.<key>`), "
        "one experiment, metrics written as `log_batch` writes them; each side in its own "
        "process. Medians of "
        f"{args.repeat} interleaved rounds after 2 warm-up rounds, in ms. The target: "
        f"server time under {TARGET} of MLflow's (its store, the faster of its two paths).",
        "",
        "| query | our server | our round trip | our list | MLflow store | MLflow client "
        "| server / store | server / client | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label in (q.label for q in QUERIES):
        server, page = ms(ours[label]["server"]), ms(ours[label]["page"])
        listed = ms(ours[label]["list"])
        store, client = ms(theirs["times"][label]["store"]), ms(theirs["times"][label]["client"])
        verdict = "PASS" if server / store < TARGET else "MISS"
        lines.append(
            f"| {label} | {server:.2f} | {page:.2f} | {listed:.2f} | {store:.2f} | {client:.2f} "
            f"| {server / store:.3f} | {server / client:.3f} | < {TARGET} | {verdict} |"
        )
    lines += ["", *machine_section(meta)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
