"""Datasets, their items and frozen versions, and imports (same SQLite file as the tasks).

An import's raw items are written to a JSON Lines file before its Ray job starts;
the job validates, hashes and records them here. A published version is a frozen
list of item ids: items imported later never change it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from jobs.db import Database
from jobs.store import now_ms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id  TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE TABLE IF NOT EXISTS items (
    item_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id       TEXT NOT NULL,
    import_id        INTEGER NOT NULL,
    data             TEXT NOT NULL,
    image            TEXT,
    digest           TEXT NOT NULL,
    annotation_count INTEGER NOT NULL DEFAULT 0,
    prediction_count INTEGER NOT NULL DEFAULT 0,
    create_time      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_dataset ON items (dataset_id, item_id);
CREATE TABLE IF NOT EXISTS imports (
    import_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       TEXT NOT NULL,
    dataset_id       TEXT NOT NULL,
    status           TEXT NOT NULL,
    return_task_ids  INTEGER NOT NULL,
    payload_path     TEXT NOT NULL,
    total            INTEGER NOT NULL,
    task_count       INTEGER NOT NULL DEFAULT 0,
    annotation_count INTEGER NOT NULL DEFAULT 0,
    prediction_count INTEGER NOT NULL DEFAULT 0,
    failed_count     INTEGER NOT NULL DEFAULT 0,
    failures         TEXT NOT NULL DEFAULT '[]',
    task_ids         TEXT,
    error            TEXT,
    ray_job_id       TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE TABLE IF NOT EXISTS versions (
    version_id   TEXT PRIMARY KEY,
    dataset_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    item_count   INTEGER NOT NULL,
    create_time  INTEGER NOT NULL,
    UNIQUE (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS version_items (
    version_id TEXT NOT NULL,
    item_id    INTEGER NOT NULL,
    PRIMARY KEY (version_id, item_id)
);
"""

DEFAULT_DATASET = "default"
ACTIVE_IMPORT = ("created", "in_progress")
MAX_FAILURES_KEPT = 10_000


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class Datasets(Database):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, _SCHEMA)

    # ----- datasets ----------------------------------------------------------------------

    def ensure_dataset(self, project_id: str, name: str = DEFAULT_DATASET) -> dict:
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM datasets WHERE project_id = ? AND name = ?", (project_id, name)).fetchone()
            if row is None:
                dataset_id = _id("ds")
                conn.execute("INSERT INTO datasets VALUES (?, ?, ?, ?)", (dataset_id, project_id, name, now_ms()))
                row = conn.execute("SELECT * FROM datasets WHERE dataset_id = ?", (dataset_id,)).fetchone()
        return dict(row)

    def dataset(self, project_id: str, dataset_id: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT d.*, (SELECT COUNT(*) FROM items i WHERE i.dataset_id = d.dataset_id) "
                               "AS item_count FROM datasets d WHERE dataset_id = ? AND project_id = ?",
                               (dataset_id, project_id)).fetchone()
        return dict(row) if row else None

    def datasets(self, project_id: str) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT d.*, (SELECT COUNT(*) FROM items i WHERE i.dataset_id = d.dataset_id) "
                                "AS item_count FROM datasets d WHERE project_id = ? ORDER BY create_time",
                                (project_id,)).fetchall()
        return [dict(r) for r in rows]

    def items(self, dataset_id: str, *, limit: int, page: int, version_id: str | None = None) -> tuple[int, list]:
        if version_id:
            base = "FROM items i JOIN version_items v ON v.item_id = i.item_id WHERE v.version_id = ?"
            args: tuple = (version_id,)
        else:
            base = "FROM items i WHERE i.dataset_id = ?"
            args = (dataset_id,)
        with self._connect() as conn:
            total = conn.execute(f"SELECT COUNT(*) {base}", args).fetchone()[0]
            rows = conn.execute(f"SELECT i.* {base} ORDER BY i.item_id LIMIT ? OFFSET ?",
                                (*args, limit, page * limit)).fetchall()
        return total, [_item(r) for r in rows]

    def iter_items(self, dataset_id: str, version_id: str | None = None):
        """Every item, oldest first, streamed (for exports and task sources)."""
        sql = ("SELECT i.* FROM items i JOIN version_items v ON v.item_id = i.item_id WHERE v.version_id = ? "
               "ORDER BY i.item_id") if version_id else "SELECT * FROM items WHERE dataset_id = ? ORDER BY item_id"
        with self._connect() as conn:
            for row in conn.execute(sql, (version_id or dataset_id,)):
                yield _item(row)

    # ----- versions ----------------------------------------------------------------------

    def publish(self, dataset_id: str, name: str | None) -> dict:
        with self._tx() as conn:
            count = conn.execute("SELECT COUNT(*) FROM versions WHERE dataset_id = ?", (dataset_id,)).fetchone()[0]
            name = name or f"V{count + 1:03d}"
            if conn.execute("SELECT 1 FROM versions WHERE dataset_id = ? AND name = ?", (dataset_id, name)).fetchone():
                raise ValueError(f"version {name!r} already exists")
            version_id = _id("v")
            conn.execute("INSERT INTO version_items SELECT ?, item_id FROM items WHERE dataset_id = ?",
                         (version_id, dataset_id))
            n = conn.execute("SELECT COUNT(*) FROM version_items WHERE version_id = ?", (version_id,)).fetchone()[0]
            conn.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", (version_id, dataset_id, name, n, now_ms()))
        return self.version(dataset_id, version_id)  # type: ignore[return-value]

    def version(self, dataset_id: str, version_id: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM versions WHERE dataset_id = ? AND version_id = ?",
                               (dataset_id, version_id)).fetchone()
        return dict(row) if row else None

    def versions(self, dataset_id: str) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM versions WHERE dataset_id = ? ORDER BY create_time",
                                (dataset_id,)).fetchall()
        return [dict(r) for r in rows]

    # ----- imports -----------------------------------------------------------------------

    def create_import(self, project_id: str, dataset_id: str, payload_path: str, total: int,
                      return_task_ids: bool) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO imports (project_id, dataset_id, status, return_task_ids, payload_path, total, "
                "created_at) VALUES (?, ?, 'created', ?, ?, ?, ?)",
                (project_id, dataset_id, int(return_task_ids), payload_path, total, now_ms()))
            return int(cur.lastrowid)

    def set_import_job(self, import_id: int, ray_job_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE imports SET ray_job_id = ? WHERE import_id = ?", (ray_job_id, import_id))

    def delete_import(self, import_id: int) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM imports WHERE import_id = ?", (import_id,))

    def get_import(self, import_id: int, project_id: str | None = None) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM imports WHERE import_id = ?", (import_id,)).fetchone()
        if row is None or (project_id is not None and row["project_id"] != project_id):
            return None
        out = dict(row)
        out["failures"] = json.loads(out["failures"])
        out["task_ids"] = json.loads(out["task_ids"]) if out["task_ids"] else None
        return out

    def start_import(self, import_id: int) -> bool:
        with self._tx() as conn:
            cur = conn.execute("UPDATE imports SET status = 'in_progress', started_at = ? "
                               "WHERE import_id = ? AND status = 'created'", (now_ms(), import_id))
            return bool(cur.rowcount)

    def record_items(self, import_id: int, dataset_id: str, rows: list[tuple[dict, str | None, str, int, int]],
                     failures: list[dict]) -> list[int]:
        """Insert one batch of validated items and its failures; returns the new item ids."""
        ts = now_ms()
        ids = []
        with self._tx() as conn:
            for data, image, digest, annotations, predictions in rows:
                cur = conn.execute(
                    "INSERT INTO items (dataset_id, import_id, data, image, digest, annotation_count, "
                    "prediction_count, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (dataset_id, import_id, json.dumps(data, ensure_ascii=False, sort_keys=True), image, digest,
                     annotations, predictions, ts))
                ids.append(int(cur.lastrowid))
            row = conn.execute("SELECT failures, task_ids, return_task_ids FROM imports WHERE import_id = ?",
                               (import_id,)).fetchone()
            kept = json.loads(row["failures"])
            kept.extend(failures[: max(0, MAX_FAILURES_KEPT - len(kept))])
            task_ids = (json.loads(row["task_ids"]) if row["task_ids"] else []) + ids
            conn.execute(
                "UPDATE imports SET task_count = task_count + ?, annotation_count = annotation_count + ?, "
                "prediction_count = prediction_count + ?, failed_count = failed_count + ?, failures = ?, "
                "task_ids = ? WHERE import_id = ?",
                (len(rows), sum(r[3] for r in rows), sum(r[4] for r in rows), len(failures), json.dumps(kept),
                 json.dumps(task_ids) if row["return_task_ids"] else None, import_id))
        return ids

    def finish_import(self, import_id: int, status: str, error: str | None = None) -> bool:
        with self._tx() as conn:
            cur = conn.execute("UPDATE imports SET status = ?, error = ?, finished_at = ? "
                               "WHERE import_id = ? AND status IN ('created', 'in_progress')",
                               (status, error, now_ms(), import_id))
            return bool(cur.rowcount)


def _item(row) -> dict:
    return {"id": row["item_id"], "data": json.loads(row["data"]), "image": row["image"], "digest": row["digest"],
            "annotation_count": row["annotation_count"], "prediction_count": row["prediction_count"],
            "import_id": row["import_id"], "create_time": row["create_time"]}
