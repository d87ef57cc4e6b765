"""PostgreSQL keeps JSON columns as written (json, not jsonb).

jsonb normalises numbers: a float tag such as 7.144929814816938e+16 came back as the int
71449298148169380, so tags were not returned exactly as given. Tag filters never used
jsonb operators (they go through experiment_tags); plain SQL can still cast to jsonb.
SQLite stores JSON as text already: nothing changes there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = ("tags", "pipeline_config", "components")


def upgrade() -> None:
    _retype(postgresql.JSONB(astext_type=sa.Text()), sa.JSON(), "json")


def downgrade() -> None:
    _retype(sa.JSON(), postgresql.JSONB(astext_type=sa.Text()), "jsonb")


def _retype(old: sa.types.TypeEngine[object], new: sa.types.TypeEngine[object], cast: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in _COLUMNS:
        op.alter_column(
            "experiments",
            column,
            type_=new,
            existing_type=old,
            postgresql_using=f"{column}::{cast}",
        )
