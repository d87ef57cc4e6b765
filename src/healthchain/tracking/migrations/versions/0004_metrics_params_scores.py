"""Metrics (every point and each key's latest), params, and per-request scores.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _experiment_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["experiment_id"],
        ["experiments.id"],
        name=op.f(f"fk_{table}_experiment_id_experiments"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("scores", sa.JSON(), nullable=True))
    op.create_table(
        "metric_points",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        _experiment_fk("metric_points"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_points")),
    )
    op.create_index(
        op.f("ix_metric_points_experiment_id_key_step_timestamp_value"),
        "metric_points",
        ["experiment_id", "key", "step", "timestamp", "value"],
    )
    op.create_table(
        "latest_metrics",
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        _experiment_fk("latest_metrics"),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_latest_metrics")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_latest_metrics_key_value_experiment_id"),
        "latest_metrics",
        ["key", "value", "experiment_id"],
    )
    op.create_table(
        "params",
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        _experiment_fk("params"),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_params")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        op.f("ix_params_key_value_experiment_id"), "params", ["key", "value", "experiment_id"]
    )


def downgrade() -> None:
    op.drop_table("params")
    op.drop_table("latest_metrics")
    op.drop_table("metric_points")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("scores")
