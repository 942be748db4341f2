"""Alembic environment: runs migrations on the engine scimbridge hands over."""

from __future__ import annotations

from alembic import context

from scimbridge.store.tables import metadata

MIGRATION_LOCK = 0x5C1B_0001
"""PostgreSQL advisory lock key held while migrating (any constant of scimbridge's own)."""

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if engine.dialect.name == "postgresql":
            # Instances started together (app and worker, the pods of a rolling upgrade) all
            # migrate on start: one at a time, so the others find the schema current instead of
            # failing on tables created meanwhile. Released when the transaction ends.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
    connection.commit()
