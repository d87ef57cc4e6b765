"""Initial schema: experiments, their tags and pipeline components.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 16:15:58.457237
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "pipeline_config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "components",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_interval", sa.Float(), nullable=False),
        sa.Column("host", sa.String(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'COMPLETED', 'FAILED', 'INTERRUPTED')",
            name=op.f("ck_experiments_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_tags_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_experiment_tags")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("experiment_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_tags_key_value_experiment_id"),
            ["key", "value", "experiment_id"],
            unique=False,
        )

    op.create_table(
        "pipeline_components",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_pipeline_components_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_components")),
        sa.UniqueConstraint(
            "experiment_id", "position", name=op.f("uq_pipeline_components_experiment_id_position")
        ),
    )


def downgrade() -> None:
    op.drop_table("pipeline_components")
    with op.batch_alter_table("experiment_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_tags_key_value_experiment_id"))

    op.drop_table("experiment_tags")
    op.drop_table("experiments")
