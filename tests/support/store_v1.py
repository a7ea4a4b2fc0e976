"""The task table as the first release made it, before is_current was kept on the record.

Used to make files of that schema (the migration tests, the store benchmark) and, as the baseline,
to run the query that numbered version series then: a window over the whole table, at every read.
Frozen copies: they must not follow later schema changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id        TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    task_type      TEXT NOT NULL,
    source_type    TEXT NOT NULL,
    source         TEXT NOT NULL,
    version_id     TEXT,
    version_name   TEXT,
    data_source    TEXT,
    inputs         TEXT NOT NULL,
    template       TEXT NOT NULL,
    work_path      TEXT NOT NULL,
    input_root     TEXT NOT NULL,
    output_dir     TEXT NOT NULL,
    execution      TEXT NOT NULL,
    status         INTEGER NOT NULL,
    error_type     TEXT,
    error_msg      TEXT,
    result         TEXT,
    create_time    INTEGER NOT NULL,
    update_time    INTEGER NOT NULL,
    run_start_ms   INTEGER,
    elapsed_ms     INTEGER NOT NULL DEFAULT 0,
    total_count    INTEGER,
    processed_count INTEGER NOT NULL DEFAULT 0,
    failed_count   INTEGER NOT NULL DEFAULT 0,
    current_run    TEXT NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks (project_id, create_time);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE TABLE IF NOT EXISTS runs (
    run_id         TEXT PRIMARY KEY,
    task_id        TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    submit_time    INTEGER NOT NULL,
    submitted      INTEGER NOT NULL DEFAULT 0,
    start_time     INTEGER,
    end_time       INTEGER,
    outcome        TEXT,
    items_computed INTEGER NOT NULL DEFAULT 0,
    message        TEXT
);
CREATE INDEX IF NOT EXISTS runs_task ON runs (task_id, seq);
"""

#: is_current / version_count as every read computed them: numbered over the whole table.
WITH_VERSIONS_V1 = """
WITH v AS (
  SELECT t.*,
    (ROW_NUMBER() OVER w = 1) AS is_current,
    COUNT(*) OVER (PARTITION BY project_id, workspace_id, task_type, source_type, source, version_id) AS version_count
  FROM tasks t
  WINDOW w AS (PARTITION BY project_id, workspace_id, task_type, source_type, source, version_id
               ORDER BY create_time DESC, task_id DESC)
)
"""

#: Columns of a v1 task row, in table order.
COLUMNS_V1 = tuple(line.split()[0] for line in SCHEMA_V1.split("CREATE TABLE IF NOT EXISTS tasks (")[1]
                   .split(");")[0].strip().splitlines())


def create_v1(path: str) -> sqlite3.Connection:
    """A new file with the v1 schema (WAL, as the store opens it), and an autocommit connection to it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA_V1)
    return conn


def insert_v1(conn: sqlite3.Connection, rows: Iterable[dict]) -> None:
    """Insert task rows (every v1 column given) and one run each, in one transaction."""
    marks = ", ".join("?" * len(COLUMNS_V1))
    conn.execute("BEGIN")
    for row in rows:
        conn.execute(f"INSERT INTO tasks ({', '.join(COLUMNS_V1)}) VALUES ({marks})", [row[c] for c in COLUMNS_V1])
        conn.execute("INSERT INTO runs (run_id, task_id, seq, submit_time, submitted) VALUES (?, ?, 1, ?, 1)",
                     (row["current_run"], row["task_id"], row["create_time"]))
    conn.execute("COMMIT")


def get_v1(conn: sqlite3.Connection, task_id: str) -> sqlite3.Row | None:
    """A single-task read as v1 ran it (the task with its window numbers, then its runs)."""
    row = conn.execute(f"{WITH_VERSIONS_V1} SELECT * FROM v WHERE task_id = ?", (task_id,)).fetchone()
    conn.execute("SELECT * FROM runs WHERE task_id = ? ORDER BY seq", (task_id,)).fetchall()
    return row


def list_v1(conn: sqlite3.Connection, project_id: str, *, workspace_id: str = "0", limit: int = 10, page: int = 0,
            query_current: bool = False) -> tuple[int, list[sqlite3.Row]]:
    """A default list page as v1 ran it (newest first): the count and the page, each over the window."""
    clause = "project_id = ? AND workspace_id = ?" + (" AND is_current = 1" if query_current else "")
    args = [project_id, workspace_id]
    total = conn.execute(f"{WITH_VERSIONS_V1} SELECT COUNT(*) FROM v WHERE {clause}", args).fetchone()[0]
    rows = conn.execute(f"{WITH_VERSIONS_V1} SELECT * FROM v WHERE {clause} "
                        "ORDER BY create_time DESC, task_id DESC LIMIT ? OFFSET ?",
                        [*args, limit, page * limit]).fetchall()
    return total, rows
