"""The service's tables as revision 0001 leaves them: one SQLAlchemy Core metadata both backends create from.

Types are chosen to mean the same on SQLite and PostgreSQL: epoch-millisecond times are ``BIGINT``, flags are
``INTEGER`` 0/1 (the statements compare them with ``= 1``), JSON is ``TEXT``. The ids SQLite hands out with
``INTEGER PRIMARY KEY AUTOINCREMENT`` are a ``BIGSERIAL`` on PostgreSQL.

Never edit these tables: revision 0001 is what every database was made with. A later change is a new revision
under ``versions/`` (``op.add_column``, ``op.create_index``...), and ``SCHEMA_VERSION`` in ``__init__.py`` names it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, PrimaryKeyConstraint, Table, Text, \
    UniqueConstraint, text

metadata = MetaData()

Millis = BigInteger
#: An id the database hands out: SQLite's rowid alias (so it must be spelt INTEGER there), a bigserial elsewhere.
Serial = BigInteger().with_variant(Integer(), "sqlite")


def _flag(name: str, default: int = 0) -> Column:
    return Column(name, Integer, nullable=False, server_default=text(str(default)))


def _count(name: str) -> Column:
    return Column(name, Integer, nullable=False, server_default=text("0"))


#: A version series: the tasks of one type over the same source and dataset version in one project's workspace.
SERIES_KEY = ("project_id", "workspace_id", "task_type", "source_type", "source", "version_id")

tasks = Table(
    "tasks", metadata,
    Column("task_id", Text, primary_key=True),
    Column("project_id", Text, nullable=False),
    Column("workspace_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("task_type", Text, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("version_id", Text),
    Column("version_name", Text),
    Column("data_source", Text),
    Column("inputs", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("work_path", Text, nullable=False),
    Column("input_root", Text, nullable=False),
    Column("output_dir", Text, nullable=False),
    Column("execution", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_type", Text),
    Column("error_msg", Text),
    Column("result", Text),
    Column("create_time", Millis, nullable=False),
    Column("update_time", Millis, nullable=False),
    Column("run_start_ms", Millis),
    Column("elapsed_ms", Millis, nullable=False, server_default=text("0")),
    Column("total_count", Integer),
    _count("processed_count"),
    _count("failed_count"),
    Column("current_run", Text, nullable=False),
    _flag("stop_requested"),
    _flag("is_current"),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Index("tasks_project", "project_id", "create_time"),
    Index("tasks_status", "status"),
    # is_current is stored because the list filters by it; version_count was counted from this index (since
    # revision 0002 it is kept in series_counts).
    Index("tasks_series", *SERIES_KEY, "create_time", "task_id"),
    Index("tasks_workspace", "project_id", "workspace_id", "create_time", "task_id"),
    Index("tasks_current", "project_id", "workspace_id", "create_time", "task_id",
          sqlite_where=text("is_current = 1"), postgresql_where=text("is_current = 1")),
)

runs = Table(
    "runs", metadata,
    Column("run_id", Text, primary_key=True),
    Column("task_id", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("submit_time", Millis, nullable=False),
    _flag("submitted"),
    Column("start_time", Millis),
    Column("end_time", Millis),
    Column("outcome", Text),
    _count("items_computed"),
    Column("message", Text),
    # The admission queue (see jobs/store.py).
    _flag("queued"),
    Column("queued_time", Millis),
    Column("not_before", Millis, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Index("runs_task", "task_id", "seq"),
    Index("runs_queue", "queued_time", "run_id", sqlite_where=text("queued = 1"),
          postgresql_where=text("queued = 1")),
)

datasets = Table(
    "datasets", metadata,
    Column("dataset_id", Text, primary_key=True),
    Column("project_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("create_time", Millis, nullable=False),
    UniqueConstraint("project_id", "name"),
)

items = Table(
    "items", metadata,
    Column("item_id", Serial, primary_key=True, autoincrement=True),
    Column("dataset_id", Text, nullable=False),
    Column("import_id", BigInteger, nullable=False),
    Column("data", Text, nullable=False),
    Column("image", Text),
    Column("digest", Text, nullable=False),
    _count("annotation_count"),
    _count("prediction_count"),
    Column("create_time", Millis, nullable=False),
    Column("annotations", Text, nullable=False, server_default="[]"),
    Column("predictions", Text, nullable=False, server_default="[]"),
    Index("items_dataset", "dataset_id", "item_id"),
    sqlite_autoincrement=True,
)

imports = Table(
    "imports", metadata,
    Column("import_id", Serial, primary_key=True, autoincrement=True),
    Column("project_id", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("return_task_ids", Integer, nullable=False),
    Column("payload_path", Text, nullable=False),
    Column("total", Integer, nullable=False),
    _count("task_count"),
    _count("annotation_count"),
    _count("prediction_count"),
    _count("failed_count"),
    Column("failures", Text, nullable=False, server_default="[]"),
    Column("task_ids", Text),
    Column("error", Text),
    Column("ray_job_id", Text),
    Column("created_at", Millis, nullable=False),
    Column("started_at", Millis),
    Column("finished_at", Millis),
    _flag("commit_to_project", 1),
    Column("preannotated_from_fields", Text),
    Column("updated_at", Millis),
    Column("committed_at", Millis),
    sqlite_autoincrement=True,
)

versions = Table(
    "versions", metadata,
    Column("version_id", Text, primary_key=True),
    Column("dataset_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("create_time", Millis, nullable=False),
    UniqueConstraint("dataset_id", "name"),
)

version_items = Table(
    "version_items", metadata,
    Column("version_id", Text, nullable=False),
    Column("item_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("version_id", "item_id"),
)

staged_items = Table(
    "staged_items", metadata,
    Column("staged_id", Serial, primary_key=True, autoincrement=True),
    Column("import_id", BigInteger, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("data", Text, nullable=False),
    Column("image", Text),
    Column("digest", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("predictions", Text, nullable=False),
    Column("annotation_count", Integer, nullable=False),
    Column("prediction_count", Integer, nullable=False),
    Column("create_time", Millis, nullable=False),
    Index("staged_import", "import_id", "staged_id"),
    sqlite_autoincrement=True,
)

users = Table(
    "users", metadata,
    Column("user_id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    _flag("is_admin"),
    Column("created_ms", Millis, nullable=False),
)

projects = Table(
    "projects", metadata,
    Column("project_id", Text, primary_key=True),
    Column("name", Text, nullable=False, server_default=""),
    Column("created_ms", Millis, nullable=False),
)

memberships = Table(
    "memberships", metadata,
    Column("user_id", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    PrimaryKeyConstraint("user_id", "project_id"),
)

tokens = Table(
    "tokens", metadata,
    Column("token_id", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("digest", Text, nullable=False),
    Column("created_ms", Millis, nullable=False),
    Column("revoked_ms", Millis),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("project_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("claim", Text, nullable=False),
    Column("status_code", Integer),
    Column("body", Text),
    Column("created_at", Millis, nullable=False),
    Column("claimed_at", Millis, nullable=False),
    PrimaryKeyConstraint("project_id", "key"),
    Index("idempotency_keys_created", "created_at"),
)
