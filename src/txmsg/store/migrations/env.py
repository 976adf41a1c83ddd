"""Alembic environment: always handed a live connection by txmsg.store.migrations."""

from __future__ import annotations

from alembic import context

from txmsg.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `txmsg migrate` (it supplies the connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
