"""Alembic migrations of the durable store (run through `cluster.store.engine.migrate`)."""
