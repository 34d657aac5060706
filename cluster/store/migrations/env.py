"""Alembic environment: always run on the connection `cluster.store.engine.migrate`
hands over (no alembic.ini, no URL of its own)."""

from __future__ import annotations

from alembic import context

from cluster.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cluster.store.engine.migrate "
                       "(`callfleet records migrate`)")

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
