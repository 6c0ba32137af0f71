"""Alembic's entry point, driven from results_db.schema with an open connection (no alembic.ini)."""

from alembic import context

from results_db.models import Base

connection = context.config.attributes["connection"]
# Batch mode rebuilds a table where SQLite's ALTER TABLE cannot change it in place.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
