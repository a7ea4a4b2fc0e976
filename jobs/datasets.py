"""Datasets, their items and frozen versions, and imports (same database as the tasks).

An import's raw items are written to a JSON Lines file before its Ray job starts;
the job validates, hashes and records them here. A published version is a frozen
list of item ids: items imported later never change it.

An import made with ``commit_to_project=false`` (Label Studio's staged import)
records its items in ``staged_items``; they become items, with ids, only when
the import is committed, so nothing reads them before that.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from jobs.db import Database
from jobs.store import now_ms

_ITEM_COLUMNS = ("dataset_id, import_id, data, image, digest, annotations, predictions, annotation_count, "
                 "prediction_count, create_time")

DEFAULT_DATASET = "default"
ACTIVE_IMPORT = ("created", "in_progress")
MAX_FAILURES_KEPT = 10_000


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class ImportNotFound(LookupError):
    """No such import in the project."""


class ImportNotStaged(ValueError):
    """The import cannot be committed in its current state (the message says why)."""


@dataclass(frozen=True)
class CheckedItem:
    """One validated item of an import, ready to record."""

    data: dict
    image: str | None
    digest: str
    annotations: list = field(default_factory=list)
    predictions: list = field(default_factory=list)

    def row(self, dataset_id: str, import_id: int, ts: int) -> tuple:
        """The values of ``_ITEM_COLUMNS``."""
        return (dataset_id, import_id, json.dumps(self.data, ensure_ascii=False, sort_keys=True), self.image,
                self.digest, _json_list(self.annotations), _json_list(self.predictions), len(self.annotations),
                len(self.predictions), ts)


def _json_list(values: list) -> str:
    return json.dumps(values, ensure_ascii=False) if values else "[]"  # most items carry no labels


class Datasets(Database):
    def __init__(self, target: str | Path) -> None:
        """``target``: the SQLite file's path, or a ``postgresql://`` URL (tables: ``jobs/migrations``)."""
        super().__init__(target)

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
                      return_task_ids: bool, *, commit_to_project: bool = True,
                      preannotated_from_fields: list[str] | None = None) -> int:
        ts = now_ms()
        with self._tx() as conn:
            row = conn.execute(
                "INSERT INTO imports (project_id, dataset_id, status, return_task_ids, payload_path, total, "
                "created_at, updated_at, commit_to_project, preannotated_from_fields) "
                "VALUES (?, ?, 'created', ?, ?, ?, ?, ?, ?, ?) RETURNING import_id",
                (project_id, dataset_id, int(return_task_ids), payload_path, total, ts, ts, int(commit_to_project),
                 json.dumps(preannotated_from_fields) if preannotated_from_fields else None)).fetchone()
            return int(row[0])

    def set_import_job(self, import_id: int, ray_job_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE imports SET ray_job_id = ?, updated_at = ? WHERE import_id = ?",
                         (ray_job_id, now_ms(), import_id))

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
        out["preannotated_from_fields"] = json.loads(out["preannotated_from_fields"] or "null")
        out["commit_to_project"] = bool(out["commit_to_project"])
        out["updated_at"] = out["updated_at"] or out["created_at"]
        return out

    def start_import(self, import_id: int) -> bool:
        ts = now_ms()
        with self._tx() as conn:
            cur = conn.execute("UPDATE imports SET status = 'in_progress', started_at = ?, updated_at = ? "
                               "WHERE import_id = ? AND status = 'created'", (ts, ts, import_id))
            return bool(cur.rowcount)

    def record_items(self, import_id: int, dataset_id: str, rows: list[CheckedItem],
                     failures: list[dict]) -> list[int]:
        """Insert one batch of validated items and its failures; returns the new item ids.

        A staged import's items go to ``staged_items`` and get item ids when it is committed."""
        ts = now_ms()
        with self._tx() as conn:
            row = conn.execute("SELECT failures, task_ids, return_task_ids, commit_to_project FROM imports "
                               "WHERE import_id = ?", (import_id,)).fetchone()
            staged = not row["commit_to_project"]
            table = "staged_items" if staged else "items"
            ids = self._insert_ids(conn, f"INSERT INTO {table} ({_ITEM_COLUMNS}) VALUES "
                                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   [item.row(dataset_id, import_id, ts) for item in rows],
                                   "staged_id" if staged else "item_id")
            kept = json.loads(row["failures"])
            kept.extend(failures[: max(0, MAX_FAILURES_KEPT - len(kept))])
            # Label Studio counts the annotations and predictions it created: a staged import creates none yet.
            annotations = 0 if staged else sum(len(r.annotations) for r in rows)
            predictions = 0 if staged else sum(len(r.predictions) for r in rows)
            task_ids = (json.loads(row["task_ids"]) if row["task_ids"] else []) + ([] if staged else ids)
            conn.execute(
                "UPDATE imports SET task_count = task_count + ?, annotation_count = annotation_count + ?, "
                "prediction_count = prediction_count + ?, failed_count = failed_count + ?, failures = ?, "
                "task_ids = ?, updated_at = ? WHERE import_id = ?",
                (len(rows), annotations, predictions, len(failures), json.dumps(kept),
                 json.dumps(task_ids) if row["return_task_ids"] and not staged else None, ts, import_id))
        return [] if staged else ids

    def finish_import(self, import_id: int, status: str, error: str | None = None) -> bool:
        ts = now_ms()
        with self._tx() as conn:
            cur = conn.execute("UPDATE imports SET status = ?, error = ?, finished_at = ?, updated_at = ? "
                               "WHERE import_id = ? AND status IN ('created', 'in_progress')",
                               (status, error, ts, ts, import_id))
            if cur.rowcount and status != "completed":
                conn.execute("DELETE FROM staged_items WHERE import_id = ?", (import_id,))
            return bool(cur.rowcount)

    def commit_imports(self, project_id: str, import_ids: list[int]) -> dict:
        """Commit staged imports: their items become the project's, with ids, in one transaction.

        Raises :class:`ImportNotFound` or :class:`ImportNotStaged`; then nothing is committed.
        Returns the counts created and the new item ids."""
        ts = now_ms()
        created = {"task_count": 0, "annotation_count": 0, "prediction_count": 0, "task_ids": []}
        with self._tx() as conn:
            for import_id in dict.fromkeys(import_ids):
                record = conn.execute("SELECT * FROM imports WHERE import_id = ? AND project_id = ?",
                                      (import_id, project_id)).fetchone()
                if record is None:
                    raise ImportNotFound(f"import {import_id} not found")
                _check_stageable(record)
                insert = (f"INSERT INTO items ({_ITEM_COLUMNS}) SELECT {_ITEM_COLUMNS} FROM staged_items "
                          "WHERE import_id = ? ORDER BY staged_id")
                if self.dialect == "postgresql":
                    # The sequence is drawn in the SELECT's order, so sorted ids are in staged order.
                    ids = sorted(r[0] for r in conn.execute(f"{insert} RETURNING item_id", (import_id,)))
                else:
                    cur = conn.execute(insert, (import_id,))
                    # One INSERT under the write lock: AUTOINCREMENT hands out consecutive ids in row order.
                    ids = (list(range(cur.lastrowid - cur.rowcount + 1, cur.lastrowid + 1))
                           if cur.rowcount > 0 else [])
                counts = conn.execute("SELECT COALESCE(SUM(annotation_count), 0), COALESCE(SUM(prediction_count), 0) "
                                      "FROM staged_items WHERE import_id = ?", (import_id,)).fetchone()
                conn.execute("DELETE FROM staged_items WHERE import_id = ?", (import_id,))
                conn.execute("UPDATE imports SET committed_at = ?, updated_at = ?, annotation_count = ?, "
                             "prediction_count = ?, task_ids = ? WHERE import_id = ?",
                             (ts, ts, counts[0], counts[1], json.dumps(ids) if record["return_task_ids"] else None,
                              import_id))
                created["task_count"] += len(ids)
                created["annotation_count"] += counts[0]
                created["prediction_count"] += counts[1]
                created["task_ids"].extend(ids)
        return created

    # ----- a project's items, as Label Studio's tasks --------------------------------------

    def project_counts(self, project_ids: list[str]) -> dict[str, dict]:
        """Per project: items, annotations, predictions and items with at least one annotation."""
        if not project_ids:
            return {}
        marks = ",".join("?" * len(project_ids))
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT d.project_id, COUNT(i.item_id) AS tasks, COALESCE(SUM(i.annotation_count), 0) AS annotations, "
                "COALESCE(SUM(i.prediction_count), 0) AS predictions, "
                "COALESCE(SUM(CASE WHEN i.annotation_count > 0 THEN 1 ELSE 0 END), 0) AS annotated "
                f"FROM datasets d JOIN items i ON i.dataset_id = d.dataset_id WHERE d.project_id IN ({marks}) "
                "GROUP BY d.project_id", project_ids).fetchall()
        return {r["project_id"]: dict(r) for r in rows}

    def project_items(self, project_id: str, *, limit: int, page: int) -> tuple[dict, list[dict]]:
        """One page of the project's items (every dataset), oldest first, and the project's totals."""
        base = "FROM items i JOIN datasets d ON d.dataset_id = i.dataset_id WHERE d.project_id = ?"
        with self._connect() as conn:
            totals = conn.execute(f"SELECT COUNT(*) AS total, COALESCE(SUM(i.annotation_count), 0) AS annotations, "
                                  f"COALESCE(SUM(i.prediction_count), 0) AS predictions {base}",
                                  (project_id,)).fetchone()
            rows = conn.execute(f"SELECT i.*, d.project_id {base} ORDER BY i.item_id LIMIT ? OFFSET ?",
                                (project_id, limit, page * limit)).fetchall()
        return dict(totals), [_labelled_item(r) for r in rows]

    def project_item(self, item_id: int) -> dict | None:
        """One item with its labels and the project it belongs to."""
        with self._connect() as conn:
            row = conn.execute("SELECT i.*, d.project_id FROM items i JOIN datasets d ON d.dataset_id = i.dataset_id "
                               "WHERE i.item_id = ?", (item_id,)).fetchone()
        return _labelled_item(row) if row else None


def _check_stageable(record) -> None:
    if record["commit_to_project"]:
        raise ImportNotStaged(f"import {record['import_id']} was committed to the project as it ran; "
                              "only an import made with commit_to_project=false is committed later")
    if record["committed_at"] is not None:
        raise ImportNotStaged(f"import {record['import_id']} is already committed")
    if record["status"] != "completed":
        raise ImportNotStaged(f"import {record['import_id']} is {record['status']}; "
                              "only a completed import can be committed")


def _item(row) -> dict:
    return {"id": row["item_id"], "data": json.loads(row["data"]), "image": row["image"], "digest": row["digest"],
            "annotation_count": row["annotation_count"], "prediction_count": row["prediction_count"],
            "import_id": row["import_id"], "create_time": row["create_time"]}


def _labelled_item(row) -> dict:
    return {**_item(row), "project_id": row["project_id"], "dataset_id": row["dataset_id"], "annotations": json.loads(row["annotations"]),
            "predictions": json.loads(row["predictions"])}
