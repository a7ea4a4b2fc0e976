"""Alembic's environment: migrations run on the connection :func:`jobs.migrations.upgrade` hands over."""

from __future__ import annotations

from alembic import context

from jobs.migrations import VERSION_TABLE

connection = context.config.attributes["connection"]
# The caller's transaction (holding the migration lock) is the migration's: Alembic must not commit inside it.
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
