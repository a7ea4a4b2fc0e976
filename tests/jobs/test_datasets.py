"""Datasets' imports on both backends: staged imports, commits, and SQLite files made before them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jobs.datasets import CheckedItem, Datasets, ImportNotFound, ImportNotStaged
from jobs.importer import check_item, preannotations

#: The imports and items tables as the first release made them.
OLD_SCHEMA = """
CREATE TABLE datasets (dataset_id TEXT PRIMARY KEY, project_id TEXT NOT NULL, name TEXT NOT NULL,
    create_time INTEGER NOT NULL, UNIQUE (project_id, name));
CREATE TABLE items (item_id INTEGER PRIMARY KEY AUTOINCREMENT, dataset_id TEXT NOT NULL, import_id INTEGER NOT NULL,
    data TEXT NOT NULL, image TEXT, digest TEXT NOT NULL, annotation_count INTEGER NOT NULL DEFAULT 0,
    prediction_count INTEGER NOT NULL DEFAULT 0, create_time INTEGER NOT NULL);
CREATE TABLE imports (import_id INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, dataset_id TEXT NOT NULL,
    status TEXT NOT NULL, return_task_ids INTEGER NOT NULL, payload_path TEXT NOT NULL, total INTEGER NOT NULL,
    task_count INTEGER NOT NULL DEFAULT 0, annotation_count INTEGER NOT NULL DEFAULT 0,
    prediction_count INTEGER NOT NULL DEFAULT 0, failed_count INTEGER NOT NULL DEFAULT 0,
    failures TEXT NOT NULL DEFAULT '[]', task_ids TEXT, error TEXT, ray_job_id TEXT, created_at INTEGER NOT NULL,
    started_at INTEGER, finished_at INTEGER);
INSERT INTO datasets VALUES ('ds1', 'p', 'default', 1);
INSERT INTO imports (project_id, dataset_id, status, return_task_ids, payload_path, total, created_at)
    VALUES ('p', 'ds1', 'completed', 0, '/x', 1, 1000);
INSERT INTO items (dataset_id, import_id, data, digest, annotation_count, create_time)
    VALUES ('ds1', 1, '{"text": "old"}', 'd', 2, 1000);
"""


def _staged(ds: Datasets, n: int, *, finish: bool = True) -> int:
    dataset = ds.ensure_dataset("p")
    import_id = ds.create_import("p", dataset["dataset_id"], "/payload", n, True, commit_to_project=False)
    ds.start_import(import_id)
    ds.record_items(import_id, dataset["dataset_id"],
                    [CheckedItem({"text": f"t{i}"}, None, f"d{i}", [], [{"result": []}]) for i in range(n)], [])
    if finish:
        ds.finish_import(import_id, "completed")
    return import_id


def test_a_database_from_before_gains_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).executescript(OLD_SCHEMA)
    ds = Datasets(db)
    record = ds.get_import(1, "p")
    assert record["commit_to_project"] is True and record["updated_at"] == 1000
    assert record["preannotated_from_fields"] is None
    total, items = ds.project_items("p", limit=10, page=0)
    assert total["total"] == 1 and items[0]["annotations"] == [] and items[0]["annotation_count"] == 2
    Datasets(db)  # opening again changes nothing


def test_staged_items_are_invisible_until_committed(database: str) -> None:
    ds = Datasets(database)
    import_id = _staged(ds, 3)
    record = ds.get_import(import_id, "p")
    assert record["task_count"] == 3 and record["prediction_count"] == 0 and record["task_ids"] is None
    assert ds.project_items("p", limit=10, page=0)[0]["total"] == 0
    created = ds.commit_imports("p", [import_id])
    assert created["task_count"] == 3 and created["prediction_count"] == 3
    totals, items = ds.project_items("p", limit=10, page=0)
    assert totals == {"total": 3, "annotations": 0, "predictions": 3}
    assert [i["id"] for i in items] == created["task_ids"] == ds.get_import(import_id, "p")["task_ids"]
    assert [i["data"]["text"] for i in items] == ["t0", "t1", "t2"]
    with pytest.raises(ImportNotStaged, match="already committed"):
        ds.commit_imports("p", [import_id])


def test_a_commit_is_all_or_nothing(database: str) -> None:
    ds = Datasets(database)
    ready, running = _staged(ds, 2), _staged(ds, 2, finish=False)
    with pytest.raises(ImportNotStaged, match="in_progress"):
        ds.commit_imports("p", [ready, running])
    with pytest.raises(ImportNotFound):
        ds.commit_imports("p", [ready, 999])
    with pytest.raises(ImportNotFound):
        ds.commit_imports("someone-else", [ready])
    assert ds.project_items("p", limit=10, page=0)[0]["total"] == 0
    assert ds.commit_imports("p", [ready])["task_count"] == 2


def test_a_failed_staged_import_leaves_nothing_staged(database: str) -> None:
    ds = Datasets(database)
    import_id = _staged(ds, 2, finish=False)
    ds.finish_import(import_id, "failed", "boom")
    with ds._connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM staged_items").fetchone()[0] == 0


@pytest.mark.parametrize(("value", "expected"), [
    ("cat", {"choices": ["cat"]}),
    (["cat", "dog"], {"choices": ["cat", "dog"]}),
    ({"rectanglelabels": ["cat"], "x": 1}, {"rectanglelabels": ["cat"], "x": 1}),
], ids=["plain", "list", "dict-as-is"])
def test_preannotations_follow_label_studio(value, expected) -> None:
    [prediction] = preannotations({"text": "t", "label": value}, ["label"])
    assert prediction["result"] == [{"from_name": "label", "to_name": "text", "type": "choices", "value": expected}]
    assert prediction["model_version"] == "preannotated" and prediction["score"] == 1.0


def test_preannotation_keeps_given_predictions_and_the_field() -> None:
    item = check_item({"data": {"text": "t", "label": "x"}, "predictions": [{"result": [], "model_version": "m"}]},
                      roots=[], preannotate=["label"])
    assert [p["model_version"] for p in item.predictions] == ["m", "preannotated"]
    assert item.data == {"text": "t", "label": "x"}
    assert preannotations({"label": None}, ["label"]) == []
    with pytest.raises(ValueError, match="preannotated field 'label'"):
        check_item({"text": "t"}, roots=[], preannotate=["label"])
