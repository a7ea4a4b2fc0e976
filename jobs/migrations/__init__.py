"""The schema's versions, as Alembic revisions (``versions/``), and how a database is brought to the newest.

Every process that opens the database (the service, each job driver) checks the recorded version first; only a
database behind it is upgraded, under a lock (SQLite's write lock, a PostgreSQL advisory lock), so processes
starting at once upgrade it once. See :func:`jobs.db.Database`.
"""

from __future__ import annotations

from pathlib import Path

#: The newest revision; a database that records it needs no upgrade (checked without importing Alembic).
SCHEMA_VERSION = "0002"
#: The table recording the version (Alembic's ``version_table``).
VERSION_TABLE = "rayproc_schema_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent


def upgrade(connection, revision: str = "head") -> None:
    """Bring the database behind ``connection`` (a SQLAlchemy connection, in a transaction that holds the
    migration lock) to :data:`SCHEMA_VERSION` (or to an older ``revision``: tests and benchmarks that build an
    earlier release's database)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
