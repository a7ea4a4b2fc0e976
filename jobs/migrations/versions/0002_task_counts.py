"""Counts kept exact by the database: a list's total and a series' size without counting rows.

A list page answers ``count``, the number of tasks its filters select, and every task on it its
``version_count``, the size of its version series. Counted, the first is a scan of the workspace (about 900,000
rows at a million tasks: a second on PostgreSQL) at every page, and the second a walk of the series' index entries
(18,000 for the largest series of the benchmark, a quarter of a second on PostgreSQL when the table's pages are not
all marked visible, as after a burst of writes). Two tables hold them instead:

- ``task_counts``: tasks per project, workspace, status and ``is_current``; a list filtered by nothing, by status
  and/or by ``query_current`` sums at most ten rows of it;
- ``series_counts``: tasks per version series; a task's ``version_count`` is one row of it.

Triggers on ``tasks`` keep both: every insert, delete and change of a counted column, whoever makes it (the
create, the stop, the runner's claim and finish, a retry, a resume, a delete), adjusts the counts in the
transaction that changes the row, so a count is exact in every snapshot that sees the rows, on both backends, and
no write path can forget one. Updates that leave those columns alone (progress, every few seconds per running
task) call nothing: SQLite tests ``WHEN``, PostgreSQL the ``UPDATE OF`` column list and ``WHEN``. ``n >= 0`` is a
constraint, so a count can never go negative (a write that would make one so fails whole).

The backfill counts the existing rows once, after the triggers exist, with the tasks table locked against writers
until the migration commits (SQLite's write lock, PostgreSQL's ``SHARE ROW EXCLUSIVE``): no row is missed or
counted twice.

Also an index for a list filtered by status (``?status=1``, the running tasks, which a dashboard polls): its page
is then its first ten entries whatever the status's share, where PostgreSQL otherwise chose between the status
index with a sort of every task of that status in the table, and the workspace's index filtered row by row.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: What a list's count is kept per (task_counts' primary key).
KEY = ("project_id", "workspace_id", "status", "is_current")
#: A version series (jobs/store.py); series_counts keeps each one's size, shown as every task's version_count.
SERIES = ("project_id", "workspace_id", "task_type", "source_type", "source", "version_id")
#: series_counts holds version_id as ``version``, NOT NULL so that it can be a key on both backends (a unique
#: key treats NULLs as distinct): '' for no version, else '=' and the id.
_VERSION = "COALESCE('=' || {row}.version_id, '')"
_SERIES_COLUMNS = (*SERIES[:-1], "version")

_CREATE = (
    """CREATE TABLE task_counts (
  project_id TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  is_current INTEGER NOT NULL,
  n BIGINT NOT NULL CHECK (n >= 0),
  PRIMARY KEY (project_id, workspace_id, status, is_current)
)""",
    """CREATE TABLE series_counts (
  project_id TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  task_type TEXT NOT NULL,
  source_type TEXT NOT NULL,
  source TEXT NOT NULL,
  version TEXT NOT NULL,
  n BIGINT NOT NULL CHECK (n >= 0),
  PRIMARY KEY (project_id, workspace_id, task_type, source_type, source, version)
)""",
)

_BACKFILL = (
    f"INSERT INTO task_counts ({', '.join(KEY)}, n) SELECT {', '.join(KEY)}, COUNT(*) FROM tasks "
    f"GROUP BY {', '.join(KEY)}",
    f"INSERT INTO series_counts ({', '.join(_SERIES_COLUMNS)}, n) SELECT {', '.join(SERIES[:-1])}, "
    f"{_VERSION.format(row='tasks')}, COUNT(*) FROM tasks GROUP BY {', '.join(SERIES)}",
)


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


def _add(table: str, columns: tuple[str, ...], values: list[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}, n) VALUES ({', '.join(values)}, 1) "
            f"ON CONFLICT ({', '.join(columns)}) DO UPDATE SET n = {table}.n + 1;")


def _take(table: str, columns: tuple[str, ...], values: list[str]) -> str:
    return f"UPDATE {table} SET n = n - 1 WHERE {' AND '.join(f'{c} = {v}' for c, v in zip(columns, values))};"


def _count_values(row: str) -> list[str]:
    return [f"{row}.{c}" for c in KEY]


def _series_values(row: str) -> list[str]:
    return [*(f"{row}.{c}" for c in SERIES[:-1]), _VERSION.format(row=row)]


ADD_COUNT, TAKE_COUNT = _add("task_counts", KEY, _count_values("NEW")), _take("task_counts", KEY, _count_values("OLD"))
ADD_SERIES = _add("series_counts", _SERIES_COLUMNS, _series_values("NEW"))
TAKE_SERIES = _take("series_counts", _SERIES_COLUMNS, _series_values("OLD"))

_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER tasks_counts_insert AFTER INSERT ON tasks BEGIN {ADD_COUNT} {ADD_SERIES} END",
    f"CREATE TRIGGER tasks_counts_delete AFTER DELETE ON tasks BEGIN {TAKE_COUNT} {TAKE_SERIES} END",
    f"CREATE TRIGGER tasks_counts_update AFTER UPDATE OF {', '.join(KEY)} ON tasks "
    f"WHEN {_changed(KEY, 'IS NOT')} BEGIN {TAKE_COUNT} {ADD_COUNT} END",
    f"CREATE TRIGGER tasks_series_update AFTER UPDATE OF {', '.join(SERIES)} ON tasks "
    f"WHEN {_changed(SERIES, 'IS NOT')} BEGIN {TAKE_SERIES} {ADD_SERIES} END",
)

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION rayproc_task_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {ADD_COUNT}
    {ADD_SERIES}
  ELSIF TG_OP = 'DELETE' THEN
    {TAKE_COUNT}
    {TAKE_SERIES}
  ELSE
    IF {_changed(KEY, 'IS DISTINCT FROM')} THEN
      {TAKE_COUNT}
      {ADD_COUNT}
    END IF;
    IF {_changed(SERIES, 'IS DISTINCT FROM')} THEN
      {TAKE_SERIES}
      {ADD_SERIES}
    END IF;
  END IF;
  RETURN NULL;
END
$$"""
_WATCHED = tuple(dict.fromkeys((*KEY, *SERIES)))
_POSTGRES_TRIGGERS = (
    "CREATE TRIGGER tasks_counts_insert_delete AFTER INSERT OR DELETE ON tasks FOR EACH ROW "
    "EXECUTE FUNCTION rayproc_task_counts()",
    f"CREATE TRIGGER tasks_counts_update AFTER UPDATE OF {', '.join(_WATCHED)} ON tasks FOR EACH ROW "
    f"WHEN ({_changed(_WATCHED, 'IS DISTINCT FROM')}) EXECUTE FUNCTION rayproc_task_counts()",
)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Writers wait from here to the commit, so no row is counted twice or missed between backfill and triggers.
        op.execute("LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE")
    for statement in _CREATE:
        op.execute(statement)
    if postgres:
        op.execute(_POSTGRES_FUNCTION)
        for statement in _POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    for statement in _BACKFILL:
        op.execute(statement)
    op.create_index("tasks_workspace_status", "tasks", ["project_id", "workspace_id", "status", "create_time",
                                                        "task_id"])


def downgrade() -> None:
    op.drop_index("tasks_workspace_status", "tasks")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tasks_counts_update ON tasks")
        op.execute("DROP TRIGGER tasks_counts_insert_delete ON tasks")
        op.execute("DROP FUNCTION rayproc_task_counts()")
    else:
        for name in ("tasks_counts_insert", "tasks_counts_delete", "tasks_counts_update", "tasks_series_update"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("series_counts")
    op.drop_table("task_counts")
