"""The tables and the statements that write them.

Migrations in ``migrations/`` build exactly this schema (a test pins it).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.elements import ColumnClause

__all__ = [
    "BEAT",
    "COMPONENTS_OF_START",
    "DELETE",
    "END",
    "FILES_DIR",
    "HEAD_REVISION",
    "INSERT_COMPONENT",
    "INSERT_EXPERIMENT",
    "INSERT_METRIC_POINT",
    "INSERT_PARAM",
    "INSERT_REQUEST",
    "INSERT_TAG",
    "LAST_STEP",
    "PARAMS_OF",
    "REAP",
    "RUNNING_ROWS",
    "STATIC_STATEMENTS",
    "STATUS_OF",
    "TAGS_OF_START",
    "UPSERT_LATEST_METRIC",
    "static",
    "alembic_version",
    "experiment_tags",
    "experiments",
    "latest_metrics",
    "metadata",
    "metric_points",
    "params",
    "pipeline_components",
    "requests",
]

# The newest migration in migrations/versions; a fresh database is created from this
# module and stamped with it, so Alembic is imported only when a database is behind.
HEAD_REVISION = "0004"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Plain json on PostgreSQL too, not jsonb: jsonb rewrites numbers (a float in exponent
# form comes back as an int), and tags must come back exactly as given.
_Json = JSON()
_Timestamp = DateTime(timezone=True)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String, nullable=False),
    Column("project", String, nullable=False),
    Column("start_time", _Timestamp, nullable=False),
    Column("end_time", _Timestamp),
    Column("status", String(16), nullable=False),
    Column("tags", _Json, nullable=False),
    Column("pipeline_config", _Json),
    # The pipeline_components rows of this experiment as [[name, type, stage], ...],
    # written in the same transaction: an experiment is read in one row lookup.
    Column("components", _Json),
    Column("error", Text),
    Column("heartbeat_at", _Timestamp),
    Column("heartbeat_interval", Float, nullable=False),
    Column("host", String),
    Column("pid", Integer),
    # Where the sandbox saved this run's requests and responses (a folder), if it did.
    Column("files_dir", Text),
    CheckConstraint("status IN ('RUNNING', 'COMPLETED', 'FAILED', 'INTERRUPTED')", name="status"),
    # Ids are UUIDv7 taken from the start time's clock reading (see _ids), so the primary
    # key is already newest-first order: on SQLite the table is clustered on it (WITHOUT
    # ROWID), one lookup per row, and no start_time index to write on every commit.
    sqlite_with_rowid=False,
)

pipeline_components = Table(
    "pipeline_components",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String, nullable=False),
    Column("type", String),
    Column("stage", String),
    Column("position", Integer, nullable=False),
    UniqueConstraint("experiment_id", "position"),
)

# One row per tag, beside the JSON column: the (key, value) index serves tag filters
# without scanning JSON. ``value`` is the tag's canonical JSON text. On SQLite the table
# is clustered on its primary key (WITHOUT ROWID): two B-trees to write, not three.
experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "value", "experiment_id"),
    sqlite_with_rowid=False,
)

# One row per request a run sent (the sandbox logs them); linked to its experiment.
requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", Integer, nullable=False),
    Column("start_time", _Timestamp, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    # {name: number} from the run's scorers (NULL for NaN, as in metric_points); NULL
    # when no scorer ran on this request.
    Column("scores", _Json),
    UniqueConstraint("experiment_id", "seq"),
)

# Metric values: NULL stands for NaN on both backends (SQLite stores a NaN as NULL, and
# one rule keeps the two alike); +inf and -inf are stored as themselves.

# Every point of every metric, as logged.
metric_points = Table(
    "metric_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", _Timestamp, nullable=False),
    Column("value", Float),
    # Covers a key's history in order: a history read never visits the table.
    Index(None, "experiment_id", "key", "step", "timestamp", "value"),
)

# Each metric's latest point (highest step, then latest timestamp), kept up to date with
# every write: filters and ordering on a metric go through the (key, value) index
# instead of aggregating the history.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String, primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", _Timestamp, nullable=False),
    Column("value", Float),
    Index(None, "key", "value", "experiment_id"),
    sqlite_with_rowid=False,
)

# One row per param; ``value`` is the param's JSON text, as for experiment_tags.
params = Table(
    "params",
    metadata,
    Column(
        "experiment_id",
        String(36),
        ForeignKey("experiments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
    Index(None, "key", "value", "experiment_id"),
    sqlite_with_rowid=False,
)

# Alembic's own bookkeeping table, kept apart from ``metadata`` so that comparing the
# schema with the migrations ignores it, as Alembic does.
alembic_version = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


# --- the write statements ---------------------------------------------------------------
# Each statement binds a row's values by name: an insert by its column names, so a row is
# a mapping of column to value; every other statement by ``b_`` names (``b_id``,
# ``b_end``...), which never collide with a column's own bind name in the same statement.

E = TypeVar("E", bound=Executable)

# Literal SQL rather than bound values, so batches bind only their own rows' values.
_RUNNING: ColumnClause[Any] = literal_column("'RUNNING'")
_FAILED: ColumnClause[Any] = literal_column("'FAILED'")


class _JsonText(TypeDecorator[Any]):
    """A JSON column bound as the JSON text its writer already encoded (validation
    encodes tags and configs to check them): no second encoding by the JSON type's bind
    processor, on any driver. The column's type (and PostgreSQL's ``::JSON`` cast) stays."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


_JSON_TEXT = _JsonText()


def _insert(table: Table, *skip: str) -> Executable:
    """An INSERT of one row bound by column name; JSON columns take their text."""
    return insert(table).values(
        {
            c.name: bindparam(c.name, type_=_JSON_TEXT if isinstance(c.type, JSON) else None)
            for c in table.c
            if c.name not in skip
        }
    )


# A new experiment: the columns it has yet to fill (NULL) are left out, values fewer to bind.
INSERT_EXPERIMENT = _insert(experiments, "end_time", "error", "files_dir")
INSERT_TAG = _insert(experiment_tags)
INSERT_COMPONENT = _insert(pipeline_components, "id")
# A batch of starts' experiment_tags and pipeline_components rows, given as the
# experiments rows they are drawn from: PostgreSQL's one-statement path builds them on
# the server from those rows' JSON (_pg_from_json). Nothing else runs these two.
TAGS_OF_START: Executable = insert(experiment_tags)
COMPONENTS_OF_START: Executable = insert(pipeline_components)
INSERT_REQUEST = _insert(requests, "id")
END = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"), experiments.c.status == _RUNNING)
    .values(status=bindparam("b_status"), end_time=bindparam("b_end"), error=bindparam("b_error"))
)
BEAT = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"), experiments.c.status == _RUNNING)
    .values(heartbeat_at=bindparam("b_beat"))
)
REAP = (
    update(experiments)
    .where(
        experiments.c.id == bindparam("b_id"),
        experiments.c.status == _RUNNING,
        experiments.c.heartbeat_at == bindparam("b_seen"),
    )
    .values(status=_FAILED, end_time=bindparam("b_end"), error=bindparam("b_error"))
)
RUNNING_ROWS = select(
    experiments.c.id,
    experiments.c.heartbeat_at,
    experiments.c.heartbeat_interval,
    experiments.c.host,
    experiments.c.pid,
).where(experiments.c.status == _RUNNING)
FILES_DIR = (
    update(experiments)
    .where(experiments.c.id == bindparam("b_id"))
    .values(files_dir=bindparam("b_files_dir"))
)
STATUS_OF = select(experiments.c.status).where(experiments.c.id == bindparam("b_id"))
DELETE = delete(experiments).where(experiments.c.id == bindparam("b_id"))
INSERT_METRIC_POINT = _insert(metric_points, "id")
INSERT_PARAM = _insert(params)
LAST_STEP = select(func.max(metric_points.c.step)).where(
    metric_points.c.experiment_id == bindparam("b_id"), metric_points.c.key == bindparam("b_key")
)
PARAMS_OF = select(params.c.key, params.c.value).where(params.c.experiment_id == bindparam("b_id"))


def _upsert_latest(insert_into: Any) -> Executable:
    """Insert a key's latest point, or replace the stored one if this one is as late.

    Later means a higher step, then a later (or equal: the newer write) timestamp.
    SQLite compares its timestamps as text, which is chronological in its fixed format.
    """
    stmt = insert_into(latest_metrics).values({c.name: bindparam(c.name) for c in latest_metrics.c})
    new, old = stmt.excluded, latest_metrics.c
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[old.experiment_id, old.key],
        set_={"step": new.step, "timestamp": new.timestamp, "value": new.value},
        where=(new.step > old.step) | ((new.step == old.step) & (new.timestamp >= old.timestamp)),
    )


def _compiled_once(stmt: Executable, table: Table) -> Executable:
    """``stmt`` (PostgreSQL's) as text with typed named parameters, so it is compiled
    once: SQLAlchemy does not cache dialect-specific inserts (``inherit_cache = False``)
    and would compile it again, ~0.5 ms, on every execution."""
    dialect = PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]
    sql = str(cast(ClauseElement, stmt).compile(dialect=dialect))
    return text(sql).bindparams(*(bindparam(c.name, type_=c.type) for c in table.c))


# By dialect name: upserts are written in each dialect's own syntax.
UPSERT_LATEST_METRIC = {
    # SQLite's executor compiles and keeps every statement itself (see _executors).
    "sqlite": _upsert_latest(sqlite.insert),
    "postgresql": _compiled_once(_upsert_latest(postgresql.insert), latest_metrics),
}

# Module-level statements live as long as the process: their compiled SQL is kept for
# good (by the statement itself, so no other statement can ever take its place).
# ``_queries`` adds its own with :func:`static`.
STATIC_STATEMENTS: set[Executable] = {
    INSERT_EXPERIMENT,
    INSERT_TAG,
    INSERT_COMPONENT,
    INSERT_REQUEST,
    END,
    BEAT,
    REAP,
    FILES_DIR,
    RUNNING_ROWS,
    STATUS_OF,
    DELETE,
    INSERT_METRIC_POINT,
    INSERT_PARAM,
    LAST_STEP,
    PARAMS_OF,
    *UPSERT_LATEST_METRIC.values(),
}


def static(stmt: E) -> E:
    """Mark a module-level statement (never one built per call): its compiled SQL is kept."""
    STATIC_STATEMENTS.add(stmt)
    return stmt
