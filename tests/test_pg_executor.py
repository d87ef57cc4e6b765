"""PostgreSQL's executor (``_pg_executor``) and its fallback through ``Connection.execute``:
the same behaviour both ways, on the real server.

Each test runs on both paths (``driver``: PgExecutor on asyncpg's DB-API adapter;
``core``: ``_backends.DRIVER_EXECUTOR`` False, as any other driver runs).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC
from typing import Any

import pytest
from helpers.pipelines import PIPELINE
from helpers.postgres import admin_fetch as _admin
from helpers.postgres import count_queries

from healthchain.tracking import (
    AsyncExperimentTracker,
    ExperimentNotFoundError,
    ExperimentStateError,
    ExperimentStatus,
    StorageError,
    _backends,
)
from healthchain.tracking._files_dir import FilesDirOp
from healthchain.tracking._measures import _BOTH_BY_ID_ARRAY, _BOTH_BY_ID_TEXT, CHUNK
from healthchain.tracking._operations import BeatOp, Op, StartOp
from healthchain.tracking._pg_executor import PgExecutor
from healthchain.tracking._schema import INSERT_TAG
from healthchain.tracking._update_ops import EndOp
from healthchain.tracking._validation import utcnow

pytestmark = pytest.mark.anyio


async def test_the_executor_in_use_is_the_one_asked_for(
    pg_uri: str, request: pytest.FixtureRequest
) -> None:
    async with AsyncExperimentTracker(pg_uri) as tracker:
        backend = await tracker._reader()
        used = await backend.read(lambda ex: type(ex).__name__)
    assert used == ("PgExecutor" if "driver" in request.node.name else "CoreExecutor")


async def test_json_columns_store_the_text_validation_wrote(pg_uri: str) -> None:
    """Tags, config and components are stored as the compact UTF-8 JSON text the tracker
    encoded once (as SQLite stores it), not re-encoded by the JSON type on the way; a
    nested dict keeps its key order in the column, sorted only in its tag row."""
    tags = {"é": "ü", "n": 1.5, "none": None}
    async with AsyncExperimentTracker(pg_uri) as tracker:
        plain = await tracker.start_experiment(
            "a", tags=tags, pipeline_config={"k": ["é", 2]}, components=PIPELINE[:1]
        )
        nested = await tracker.start_experiment("b", tags={"cfg": {"z": 1, "a": [2]}})
        assert list((await tracker.get_experiment(nested)).tags["cfg"]) == ["z", "a"]
        assert (await tracker.get_experiment(plain)).tags == tags
    (rows, tag_rows) = await _admin(
        pg_uri,
        "SELECT id, tags::text, pipeline_config::text, components::text FROM experiments",
        "SELECT experiment_id, key, value FROM experiment_tags",
    )
    stored = {row[0]: tuple(row[1:]) for row in rows}
    part = PIPELINE[0]
    assert stored[plain] == (
        '{"é":"ü","n":1.5,"none":null}',
        '{"k":["é",2]}',
        f'[["{part["name"]}","{part["type"]}","{part["stage"]}"]]',
    )
    assert stored[nested] == ('{"cfg":{"z":1,"a":[2]}}', None, None)
    assert (nested, "cfg", '{"a":[2],"z":1}') in [tuple(r) for r in tag_rows]


async def test_lifecycles_from_many_tasks_are_all_recorded_whole(pg_uri: str) -> None:
    async def one(tracker: AsyncExperimentTracker, i: int) -> str:
        experiment_id = await tracker.start_experiment(
            f"run-{i}",
            tags={"i": i, "even": i % 2 == 0},
            pipeline_config={"i": i},
            components=PIPELINE[: i % 3],
        )
        await tracker.end_experiment(experiment_id, ExperimentStatus.FAILED, error=f"e{i}")
        return experiment_id

    async with AsyncExperimentTracker(pg_uri) as tracker:
        ids = await asyncio.gather(*(one(tracker, i) for i in range(200)))
        for i, experiment_id in enumerate(ids):
            got = await tracker.get_experiment(experiment_id)
            assert (got.name, got.tags, got.pipeline_config, got.error) == (
                f"run-{i}",
                {"i": i, "even": i % 2 == 0},
                {"i": i},
                f"e{i}",
            )
            assert [c.name for c in got.components] == [c["name"] for c in PIPELINE[: i % 3]]
            assert got.status is ExperimentStatus.FAILED and got.end_time is not None
        assert len(await tracker.list_experiments({"tags": {"even": True}})) == 100


async def test_a_start_that_fails_fails_alone_and_leaves_no_row(pg_uri: str) -> None:
    """A trigger refuses one tag: that start fails, with nothing of it written (the
    experiment row and its tags are one statement), and the starts batched with it land."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        await tracker.list_experiments()  # creates the schema
        await _admin(
            pg_uri,
            "CREATE OR REPLACE FUNCTION hc_refuse_boom() RETURNS trigger AS $$ BEGIN "
            "IF NEW.key = 'boom' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; "
            "END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER hc_refuse_boom BEFORE INSERT ON experiment_tags "
            "FOR EACH ROW EXECUTE FUNCTION hc_refuse_boom()",
        )
        with pytest.raises(StorageError, match="boom refused"):
            await tracker.start_experiment("alone", tags={"boom": 1})
        results = await asyncio.gather(
            *(
                tracker.start_experiment(f"run-{i}", tags={"boom" if i == 7 else "ok": i})
                for i in range(32)
            ),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and "boom refused" in str(failed[0])
        names = {e.name for e in await tracker.list_experiments()}
    assert names == {f"run-{i}" for i in range(32) if i != 7}
    (count,), (tags,) = [
        rows[0]
        for rows in await _admin(
            pg_uri,
            "SELECT count(*) FROM experiments",
            "SELECT count(*) FROM experiment_tags",
        )
    ]
    assert (count, tags) == (31, 31)


async def test_an_end_named_twice_in_one_batch_is_replayed_one_by_one(pg_uri: str) -> None:
    """One UPDATE over arrays updates a row named twice once: its count falls short,
    so the batch is replayed op by op and only the second end of ``a`` fails."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        a, b = await tracker.start_experiment("a"), await tracker.start_experiment("b")
        backend = await tracker._reader()
        now = utcnow()
        ops = [EndOp.of(i, ExperimentStatus.COMPLETED, now, None) for i in (a, b, a)]
        outcomes = await backend.write(ops)
        assert outcomes[:2] == [None, None]
        assert isinstance(outcomes[2], ExperimentStateError)
        assert "already ended as COMPLETED" in str(outcomes[2])
        for experiment_id in (a, b):
            got = await tracker.get_experiment(experiment_id)
            assert got.status is ExperimentStatus.COMPLETED


async def test_the_writers_connection_is_left_in_transactions_after_a_single_write(
    postgres_uri: str,
) -> None:
    """A single op runs in autocommit; the connection must not stay so, or a later
    batch (or a migration on the pooled connection) would not be atomic."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        backend = await tracker._reader()
        start = StartOp.of(
            "0190a4c2-0000-7000-8000-000000000001", "n", "p", utcnow(), {}, {}, None, [], 10.0
        )
        assert await backend.write([start]) == [None]
        assert isinstance(backend, _backends.CoreBackend) and backend._writer is not None
        raw = await backend._writer.get_raw_connection()
        assert raw.dbapi_connection is not None
        assert raw.dbapi_connection.autocommit is False


async def test_reads_run_in_autocommit_and_leave_their_connection_as_it_was(
    pg_uri: str,
) -> None:
    """A read needs no transaction (see ``_backends``), so no BEGIN and ROLLBACK round
    trips; the pooled connection goes back as it was, or a write that takes it next
    would not be atomic."""

    def seen(ex: Any) -> tuple[int, bool]:
        dbapi = ex._conn.connection.dbapi_connection
        return id(dbapi), dbapi.autocommit

    async with AsyncExperimentTracker(pg_uri) as tracker:
        backend = await tracker._reader()
        connection, autocommit = await backend.read(seen)
        assert autocommit is True
        async with backend.engine.connect() as conn:  # the pool's one connection
            raw = await conn.get_raw_connection()
            assert id(raw.dbapi_connection) == connection
            assert raw.dbapi_connection.autocommit is False


async def test_reads_survive_connections_the_server_closed(pg_uri: str) -> None:
    async with AsyncExperimentTracker(pg_uri) as tracker:
        experiment_id = await tracker.start_experiment("kept")
        # several pooled connections, all idle after this
        await asyncio.gather(*(tracker.get_experiment(experiment_id) for _ in range(4)))
        (killed,) = await _admin(
            pg_uri,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert len(killed) >= 2
        await asyncio.sleep(0.1)  # the server has closed them
        assert (await tracker.get_experiment(experiment_id)).name == "kept"
        assert [e.name for e in await tracker.list_experiments()] == ["kept"]


async def test_executor_is_used_only_for_asyncpg() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from healthchain.tracking._pg_executor import usable

    assert usable(postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
    assert not usable(postgresql.psycopg.dialect())  # type: ignore[attr-defined]
    assert not usable(sqlite.aiosqlite.dialect())  # type: ignore[attr-defined]
    assert PgExecutor.dialect == "postgresql"


class _TwoWrites(Op):
    """An op that wrongly claims one statement: two INSERTs, each its own statement."""

    single_statement = True

    def __init__(self, experiment_id: str) -> None:
        super().__init__()
        self.experiment_id = experiment_id

    def apply(self, ex: Any) -> None:
        for key in ("a", "b"):
            ex.run(INSERT_TAG, [{"experiment_id": self.experiment_id, "key": key, "value": "1"}])


async def test_an_op_claiming_one_statement_that_writes_two_is_refused(postgres_uri: str) -> None:
    """Autocommit makes each statement its own transaction: the executor refuses the
    second, so a wrong claim shows in tests instead of as a half-written op."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        experiment_id = await tracker.start_experiment()
        backend = await tracker._reader()
        (outcome,) = await backend.write([_TwoWrites(experiment_id)])
    assert isinstance(outcome, RuntimeError) and "single_statement" in str(outcome)


def _start(experiment_id: str, tag: str = "t") -> StartOp:
    return StartOp.of(experiment_id, "n", "p", utcnow(), {tag: 1}, {tag: "1"}, None, [], 10.0)


def _end(experiment_id: str) -> EndOp:
    return EndOp.of(experiment_id, ExperimentStatus.COMPLETED, utcnow(), None)


def _uuid(n: int) -> str:
    return f"0190a4c2-0000-7000-8000-{n:012d}"


async def _record_statements(uri: str) -> None:
    """Each experiment row written from now on is recorded with the time its statement
    began (``statement_timestamp()``): rows written by one statement share it."""
    await _admin(
        uri,
        "DROP TABLE IF EXISTS hc_seen",
        "CREATE TABLE hc_seen (id text, op text, at timestamptz)",
        "CREATE OR REPLACE FUNCTION hc_seen() RETURNS trigger AS $$ BEGIN "
        "INSERT INTO hc_seen VALUES (NEW.id, TG_OP, statement_timestamp()); RETURN NEW; "
        "END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER hc_seen AFTER INSERT OR UPDATE ON experiments "
        "FOR EACH ROW EXECUTE FUNCTION hc_seen()",
    )


async def _statements_seen(uri: str) -> tuple[int, list[tuple[str, str]]]:
    """How many statements wrote experiment rows, and which rows they wrote."""
    (count,), rows = await _admin(
        uri,
        "SELECT count(DISTINCT at) FROM hc_seen",
        "SELECT id, op FROM hc_seen ORDER BY id, op",
    )
    await _admin(uri, "DROP TABLE hc_seen CASCADE")
    return count[0], [(r["id"], r["op"]) for r in rows]


async def test_a_batch_of_starts_and_ends_is_one_statement(postgres_uri: str) -> None:
    """Starts (rows and tags) and ends of experiments started earlier: one statement
    in autocommit, one round trip, where a transaction took four."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = [await tracker.start_experiment(f"e{i}") for i in range(3)]
        backend = await tracker._reader()
        await _record_statements(postgres_uri)
        ops: list[Op] = [_start(_uuid(i), tag=f"k{i}") for i in range(4)]
        ops[1:1] = [_end(i) for i in earlier]
        assert await backend.write(ops) == [None] * 7
        statements, rows = await _statements_seen(postgres_uri)
        assert statements == 1
        assert sorted(rows) == sorted(
            [(i, "UPDATE") for i in earlier] + [(_uuid(i), "INSERT") for i in range(4)]
        )
        for i in range(4):
            assert (await tracker.get_experiment(_uuid(i))).tags == {f"k{i}": 1}
        for experiment_id in earlier:
            got = await tracker.get_experiment(experiment_id)
            assert got.status is ExperimentStatus.COMPLETED


async def test_a_batch_of_starts_keeps_each_rows_own_writer_columns(pg_uri: str) -> None:
    """Project, heartbeat interval, host and pid are bound once for a batch when every
    row holds the same (``WRITER_CONSTANTS``); rows that differ keep their own."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        backend = await tracker._reader()
        now = utcnow()

        def start(n: int, project: str, interval: float) -> StartOp:
            return StartOp.of(_uuid(n), f"n{n}", project, now, {}, {}, None, [], interval)

        alike = [start(n, "p", 10.0) for n in range(3)]
        mixed = [start(3, "p", 10.0), start(4, "q", 10.0), start(5, "p", 20.0)]
        assert await backend.write(alike) == [None] * 3
        assert await backend.write(mixed) == [None] * 3
    (rows,) = await _admin(
        pg_uri, "SELECT id, name, project, status, heartbeat_interval FROM experiments"
    )
    assert sorted(tuple(r) for r in rows) == [
        (_uuid(0), "n0", "p", "RUNNING", 10.0),
        (_uuid(1), "n1", "p", "RUNNING", 10.0),
        (_uuid(2), "n2", "p", "RUNNING", 10.0),
        (_uuid(3), "n3", "p", "RUNNING", 10.0),
        (_uuid(4), "n4", "q", "RUNNING", 10.0),
        (_uuid(5), "n5", "p", "RUNNING", 20.0),
    ]


async def test_an_end_that_changes_no_row_fails_the_one_statement_and_alone(
    postgres_uri: str,
) -> None:
    """An end of an unknown experiment, and one of an experiment started in the same
    batch (the one statement does not see that row): the statement's count check fails
    it with nothing written, the batch is replayed op by op, and only the unknown
    end fails."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = await tracker.start_experiment("earlier")
        backend = await tracker._reader()
        await _record_statements(postgres_uri)
        missing = _uuid(99)
        ops: list[Op] = [_start(_uuid(1)), _end(earlier), _end(missing), _end(_uuid(1))]
        outcomes = await backend.write(ops)
        assert outcomes[:2] == [None, None] and outcomes[3] is None
        assert isinstance(outcomes[2], ExperimentNotFoundError) and missing in str(outcomes[2])
        statements, rows = await _statements_seen(postgres_uri)
        # one statement per op that wrote: the failed one statement left nothing
        assert statements == 3
        assert sorted(rows) == sorted(
            [(earlier, "UPDATE"), (_uuid(1), "INSERT"), (_uuid(1), "UPDATE")]
        )
        for experiment_id in (earlier, _uuid(1)):
            got = await tracker.get_experiment(experiment_id)
            assert got.status is ExperimentStatus.COMPLETED


async def test_folders_and_ends_of_a_batch_are_one_statement(postgres_uri: str) -> None:
    """Saved-files folders are counted updates like ends: a batch of both, of
    experiments started earlier, is one statement in autocommit."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        backend = await tracker._reader()
        earlier = [_uuid(i) for i in range(4)]
        assert await backend.write([_start(i) for i in earlier]) == [None] * 4
        await _record_statements(postgres_uri)
        ops: list[Op] = [FilesDirOp.of(i, f"/runs/{i}") for i in earlier[:3]]
        ops.insert(1, _end(earlier[3]))
        assert await backend.write(ops) == [None] * 4
        statements, rows = await _statements_seen(postgres_uri)
        assert statements == 1
        assert sorted(rows) == [(i, "UPDATE") for i in earlier]
        found = [await tracker.get_experiment(i) for i in earlier]
        assert [e.files_dir for e in found] == [f"/runs/{i}" for i in earlier[:3]] + [None]
        assert [e.status for e in found] == [ExperimentStatus.RUNNING] * 3 + [
            ExperimentStatus.COMPLETED
        ]


async def test_a_folder_of_an_unknown_experiment_fails_only_itself(pg_uri: str) -> None:
    """Its update changes no row: the batch (one statement with the driver) writes
    nothing, is replayed op by op, and only that folder fails, as not found."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        backend = await tracker._reader()
        a, b, c = _uuid(1), _uuid(2), _uuid(3)
        assert await backend.write([_start(i) for i in (a, b, c)]) == [None] * 3
        await _record_statements(pg_uri)
        missing = _uuid(99)
        ops: list[Op] = [FilesDirOp.of(i, f"/runs/{i}") for i in (a, missing, b)]
        ops.append(_end(c))
        outcomes = await backend.write(ops)
        assert outcomes[0] is None and outcomes[2:] == [None, None]
        assert isinstance(outcomes[1], ExperimentNotFoundError) and missing in str(outcomes[1])
        statements, rows = await _statements_seen(pg_uri)
        assert statements == 3  # one per op that wrote: nothing of the failed batch
        assert sorted(rows) == [(a, "UPDATE"), (b, "UPDATE"), (c, "UPDATE")]
        found = [await tracker.get_experiment(i) for i in (a, b, c)]
        assert [e.files_dir for e in found] == [f"/runs/{a}", f"/runs/{b}", None]
        assert found[2].status is ExperimentStatus.COMPLETED


async def test_a_batch_with_an_op_of_no_statements_is_one_transaction(postgres_uri: str) -> None:
    """A heartbeat says no statements (its count need not match): the batch falls back
    to one transaction of a statement per class, all of it written."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = await tracker.start_experiment("earlier")
        backend = await tracker._reader()
        await _record_statements(postgres_uri)
        ops: list[Op] = [_start(_uuid(1)), _end(earlier), BeatOp.of([_uuid(1)], utcnow())]
        assert await backend.write(ops) == [None] * 3
        statements, rows = await _statements_seen(postgres_uri)
        assert statements == 3  # the starts, the ends, the heartbeat
        assert sorted(rows) == sorted(
            [(earlier, "UPDATE"), (_uuid(1), "INSERT"), (_uuid(1), "UPDATE")]
        )
        assert (await tracker.get_experiment(earlier)).status is ExperimentStatus.COMPLETED


async def test_only_the_driver_executor_writes_a_batch_as_one_statement(
    postgres_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through ``Connection.execute`` (any other driver) the same batch is written,
    one statement per row of the ends."""
    monkeypatch.setattr(_backends, "DRIVER_EXECUTOR", False)
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = [await tracker.start_experiment(f"e{i}") for i in range(2)]
        backend = await tracker._reader()
        await _record_statements(postgres_uri)
        ops: list[Op] = [_start(_uuid(1)), *map(_end, earlier)]
        assert await backend.write(ops) == [None] * 3
        statements, _ = await _statements_seen(postgres_uri)
        assert statements == 3
        for experiment_id in earlier:
            got = await tracker.get_experiment(experiment_id)
            assert got.status is ExperimentStatus.COMPLETED


async def test_batches_after_the_writers_connection_was_killed_are_all_recorded(
    postgres_uri: str,
) -> None:
    """The first batch on the killed connection fails as the storage's own failure: the
    connection is dropped and the batch retried on a new one, each op written once."""
    async with AsyncExperimentTracker(postgres_uri) as tracker:
        earlier = [await tracker.start_experiment(f"e{i}") for i in range(8)]
        (killed,) = await _admin(
            postgres_uri,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert killed
        started = await asyncio.gather(
            *(tracker.start_experiment(f"s{i}") for i in range(8)),
            *(tracker.end_experiment(i) for i in earlier),
        )
        experiments = await tracker.list_experiments()
    assert len(experiments) == 16 and len(set(started[:8])) == 8
    assert {e.name for e in experiments if e.status is ExperimentStatus.COMPLETED} == {
        f"e{i}" for i in range(8)
    }


async def test_a_long_list_reads_metrics_and_params_with_one_query(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every id bound as one array, both tables in one query: two queries for the list,
    however long it is."""
    count = 2 * CHUNK + 3
    async with AsyncExperimentTracker(pg_uri) as tracker:
        ids = await asyncio.gather(*(tracker.start_experiment(f"run{i}") for i in range(count)))
        await asyncio.gather(*(tracker.log_metrics(e, {"i": i}) for i, e in enumerate(ids)))
        await asyncio.gather(*(tracker.log_params(e, {"p": i}) for i, e in enumerate(ids)))
        queries = count_queries(monkeypatch)
        records = await tracker.list_experiments()
    assert len(queries) == 2
    assert {(r.name, r.metrics["i"], r.params["p"]) for r in records} == {
        (f"run{i}", float(i), i) for i in range(count)
    }


async def test_history_and_values_read_as_arrays_alike_both_ways(pg_uri: str) -> None:
    """Both read a key's points as arrays on PostgreSQL: ordered, NaN restored, exact."""
    logged = [(3, 0.5), (1, math.nan), (2, math.inf), (2, -0.0), (0, 1e-300)]
    async with AsyncExperimentTracker(pg_uri) as tracker:
        run = await tracker.start_experiment("run")
        for step, value in logged:
            await tracker.log_metric(run, "loss", value, step=step)
        history = await tracker.get_metric_history(run, "loss")
        values = await tracker.get_metric_values(run, "loss")
        assert await tracker.get_metric_history(run, "never") == []
        assert await tracker.get_metric_values(run, "never") == []
    # by step, then time: the two points at step 2 in the order they were logged
    expected = [(0, 1e-300), (1, math.nan), (2, math.inf), (2, -0.0), (3, 0.5)]
    for got in ([(p.step, p.value) for p in history], values):
        assert [s for s, _ in got] == [s for s, _ in expected]
        pairs = zip(got, expected, strict=True)
        assert all(a == b or (math.isnan(a) and math.isnan(b)) for (_, a), (_, b) in pairs)
    assert all(type(pair) is tuple for pair in values)
    assert all(p.timestamp.tzinfo is UTC for p in history)


@pytest.mark.parametrize(("version", "ordered"), [((15, 4), False), ((16, 0), True), (None, True)])
def test_history_arrays_are_ordered_in_the_aggregate_from_postgresql_16(
    version: tuple[int, ...] | None, ordered: bool
) -> None:
    """From 16, where array_agg has a parallel form, only ORDER BY in the aggregate
    keeps the points' order; before it the sorted subquery does, with no sort more."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    from healthchain.tracking._metric_reads import METRIC_HISTORY_ARRAYS, METRIC_VALUES_ARRAYS

    dialect = PGDialect_asyncpg()
    dialect.server_version_info = version
    for stmt in (METRIC_HISTORY_ARRAYS, METRIC_VALUES_ARRAYS):
        sql = str(stmt.compile(dialect=dialect))
        aggregates = sql.count("array_agg(")
        in_order = sql.count("ORDER BY points.step, points.timestamp, points.value)")
        assert aggregates in (2, 3) and in_order == (aggregates if ordered else 0)


@pytest.mark.parametrize("odd", ["holds\x1fthe separator", ""])
async def test_ids_go_as_one_text_unless_one_holds_the_separator(
    pg_uri: str, odd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list's ids are sent as one text split on the server; an id another writer left
    holding U+001F (or a lone empty id, which would split into none) sends them as an
    array: every record gets its own metrics and params either way."""
    async with AsyncExperimentTracker(pg_uri) as tracker:
        ours = await tracker.start_experiment("ours")
        await tracker.log_metrics(ours, {"acc": 0.5})
        await tracker.log_params(ours, {"lr": 0.1})
        queries = count_queries(monkeypatch)
        [plain] = await tracker.list_experiments()
        await _admin(
            pg_uri,
            "INSERT INTO experiments (id, name, project, start_time, status, tags, "
            f"heartbeat_interval) VALUES ('{odd}', 'theirs', 'default', now(), "
            "'COMPLETED', '{}', 10)",
            "INSERT INTO latest_metrics (experiment_id, key, step, timestamp, value) "
            f"VALUES ('{odd}', 'acc', 0, now(), 0.25)",
            f"INSERT INTO params (experiment_id, key, value) VALUES ('{odd}', 'lr', '0.2')",
        )
        listed = {e.id: e for e in await tracker.list_experiments()}
        one = await tracker.list_experiments(filters={"name": "theirs"})
    assert (plain.metrics, plain.params) == ({"acc": 0.5}, {"lr": 0.1})
    assert {i: (e.metrics, e.params) for i, e in listed.items()} == {
        ours: ({"acc": 0.5}, {"lr": 0.1}),
        odd: ({"acc": 0.25}, {"lr": 0.2}),
    }
    assert [(e.id, e.metrics) for e in one] == [(odd, {"acc": 0.25})]
    assert queries[1] is _BOTH_BY_ID_TEXT
    # an empty id beside others splits as itself; alone, it would split into none
    assert queries[3] is (_BOTH_BY_ID_ARRAY if odd else _BOTH_BY_ID_TEXT)
    assert queries[5] is _BOTH_BY_ID_ARRAY
