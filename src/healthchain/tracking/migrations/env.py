"""Alembic environment: migrations run on a connection healthchain hands over."""

from __future__ import annotations

from alembic import context

from healthchain.tracking._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "healthchain's migrations run through the tracker: use `healthchain db upgrade` "
        "or open an ExperimentTracker on the database"
    )
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
