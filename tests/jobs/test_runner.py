"""The job runner's own logic, driven in-process on a real database and real files."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from jobs import chunk, runner
from jobs.catalog import CatalogError, parse_task_type, resolve_operators
from jobs.sources import PathNotAllowed, items_within, list_images, resolve_within
from jobs.status import TaskStatus
from jobs.store import Store
from operators.registry import default_registry
from tests.support.images import make_known_set, make_many


def _task(store: Store, folder: Path, out: Path, task_id: str = "t1", run_id: str = "r1") -> None:
    store.insert_task({
        "task_id": task_id, "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(folder), "version_id": None,
        "version_name": None, "data_source": None, "inputs": [],
        "template": {"id": "sys_data_analyse", "operator_params": [{"id": "image_features", "params": {}}]},
        "work_path": {}, "input_root": str(folder), "output_dir": str(out), "execution": {"chunk_size": 32},
        "current_run": run_id,
    })


def test_single_chunk_run_completes_in_process(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_known_set(folder)
    store = Store(tmp_path / "db.sqlite")
    _task(store, folder, tmp_path / "out")
    code = runner.main(["--db", store.path, "--task-id", "t1", "--run-id", "r1", "--allowed-root", str(tmp_path)])
    assert code == 0
    rec = store.get_task("t1")
    assert rec.status == TaskStatus.COMPLETED
    assert (rec.processed_count, rec.failed_count, rec.total_count) == (5, 2, 7)
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == rec.result
    lines = (tmp_path / "out" / "features.jsonl").read_text().splitlines()
    assert [json.loads(x)["item"] for x in lines] == ["blurry.png", "bright.png", "dark.png", "sharp.png",
                                                      "sub/noise.png"]


def test_a_stopped_pending_run_does_no_work(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_many(folder, 2)
    store = Store(tmp_path / "db.sqlite")
    _task(store, folder, tmp_path / "out")
    store.stop_if_not_started("t1")
    assert runner.main(["--db", store.path, "--task-id", "t1", "--run-id", "r1", "--allowed-root", str(tmp_path)]) == 0
    assert store.get_task("t1").status == TaskStatus.STOPPED
    assert not (tmp_path / "out").exists()


def test_runner_rechecks_roots_and_classifies_the_failure(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_many(folder, 2)
    store = Store(tmp_path / "db.sqlite")
    _task(store, folder, tmp_path / "out")
    assert runner.main(["--db", store.path, "--task-id", "t1", "--run-id", "r1",
                        "--allowed-root", str(tmp_path / "elsewhere")]) == 1
    rec = store.get_task("t1")
    assert rec.status == TaskStatus.FAILED and rec.error_type == "path_not_allowed"


def test_an_internal_error_is_stored_without_the_details_which_go_to_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from jobs import execution

    folder = tmp_path / "in"
    make_many(folder, 2)
    store = Store(tmp_path / "db.sqlite")
    _task(store, folder, tmp_path / "out")

    def broken(ctx):
        raise sqlite3.DatabaseError(f"file is not a database: {store.path}")

    monkeypatch.setattr(execution, "execute", broken)
    assert runner.main(["--db", store.path, "--task-id", "t1", "--run-id", "r1", "--allowed-root", str(tmp_path)]) == 1
    rec = store.get_task("t1")
    assert rec.status == TaskStatus.FAILED and rec.error_type == "internal_error"
    assert "DatabaseError" in rec.error_msg and "r1" in rec.error_msg
    assert str(tmp_path) not in rec.error_msg and "Traceback" not in rec.error_msg
    assert str(store.path) in capsys.readouterr().err  # the run's log has it


def test_symlinked_item_escaping_the_root_fails_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    folder = root / "in"
    make_many(folder, 2)
    outside = tmp_path / "outside.png"
    (folder / "img_0000.png").rename(outside)
    (folder / "img_0000.png").symlink_to(outside)
    records = chunk.process_chunk([], [{"id": "image_features", "params": {}}], str(folder),
                                   ["img_0000.png", "img_0001.png"], [str(root)])
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert records[0]["error_code"] == "path_not_allowed"


def test_resolve_within(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert resolve_within(str(tmp_path / "a"), [str(tmp_path)]) == (tmp_path / "a").resolve()
    for bad in ("", "a", "file:///etc", "s3://b/k", f"{tmp_path}/a/../a", "/etc", "/x\x00y"):
        with pytest.raises(PathNotAllowed):
            resolve_within(bad, [str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        resolve_within(str(tmp_path / "missing"), [str(tmp_path)])


def test_list_images_skips_hidden_and_non_images(tmp_path: Path) -> None:
    make_known_set(tmp_path)
    (tmp_path / ".rayproc").mkdir()
    (tmp_path / ".rayproc" / "x.png").write_bytes(b"")
    root, items = list_images(tmp_path)
    assert root == tmp_path and "notes.txt" not in items and all(not i.startswith(".") for i in items)
    assert items == sorted(items) and "sub/noise.png" in items
    assert list_images(tmp_path / "dark.png") == (tmp_path, ["dark.png"])


def test_catalog_errors_name_the_field() -> None:
    with pytest.raises(CatalogError) as info:
        parse_task_type("sys_nope")
    assert info.value.field == "template.id"
    specs = resolve_operators(parse_task_type("sys_data_analyse"), [], default_registry())
    assert [s.id for s in specs] == ["image_features", "image_issues", "box_features"]
    assert specs[0].params == {"histogram_bins": 20}
    # a cleaning rule brings the analysis operators it needs, before it
    specs = resolve_operators(parse_task_type("sys_data_cleaning"), [], default_registry())
    assert [s.id for s in specs] == ["image_features", "image_issues", "data_cleaning"]


def test_a_manifest_carries_labels_and_boxes_and_reports_bad_lines(tmp_path: Path) -> None:
    from jobs.sources import list_items

    folder = tmp_path / "in"
    make_many(folder, 3)
    manifest = folder / "data.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"image": "img_0000.png", "label": "cat", "boxes": [{"bbox": [1, 2, 3, 4], "label": "eye"}]}),
        json.dumps({"source": f"{folder}/img_0001.png"}),
        "{not json",
        json.dumps({"label": "no image"}),
        json.dumps({"image": "missing.png", "label": "dog"}),
    ]) + "\n")
    root, items = list_items(manifest)
    assert root == folder and len(items) == 5
    records = chunk.process_chunk([], [{"id": "image_features", "params": {}}], str(root), items, [str(tmp_path)])
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "failed", "failed"]
    assert records[0]["label"] == "cat" and records[0]["boxes"] == [{"bbox": [1, 2, 3, 4], "label": "eye"}]
    assert [r.get("error_code") for r in records[2:]] == ["bad_manifest_line", "bad_manifest_line", "unreadable"]
    assert records[4]["label"] == "dog"


def test_start_gate_drops_only_chunks_that_had_not_started(tmp_path: Path) -> None:
    from jobs.scheduler import StartGate

    gate = StartGate(tmp_path)
    assert gate.enter(0) is True  # started before the stop: runs and is kept
    assert gate.enter(0) is True  # a retry of the same chunk after a lost worker
    assert not gate.started(1)
    gate.close()
    assert gate.started(0) and not gate.started(1)  # the driver cancels 1, waits for 0
    assert gate.enter(1) is False  # 1 started after the stop anyway: it returns without work
    assert gate.started(1)


def test_start_gate_out_of_reach_never_blocks_work(tmp_path: Path) -> None:
    from jobs.scheduler import StartGate

    gate = StartGate(tmp_path / "not-mounted-here")
    assert gate.enter(3) is True and not gate.started(3)


def test_items_within_agrees_with_resolving_every_path(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "in" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    for name in ("a.png", "in/b.png", "in/sub/c.png"):
        (root / name).write_bytes(b"x")
    (tmp_path / "outside" / "d.png").write_bytes(b"x")
    (root / "in" / "to_outside").symlink_to(tmp_path / "outside")  # a folder link out of the root
    (root / "in" / "to_sub").symlink_to(root / "in" / "sub")  # a folder link that stays inside
    (root / "in" / "e.png").symlink_to(tmp_path / "outside" / "d.png")  # a file link out
    (root / "in" / "f.png").symlink_to(root / "a.png")  # a file link that stays inside
    keys = ["b.png", "sub/c.png", "to_outside/d.png", "to_sub/c.png", "e.png", "f.png", "missing.png",
            "../a.png", "../../outside/d.png", "sub/..", ".", str(tmp_path / "outside" / "d.png"), str(root / "a.png")]
    folder = root / "in"
    expected = [os.path.realpath(folder / k).startswith(str(root.resolve()) + os.sep) for k in keys]
    assert items_within(folder, keys, [str(root)]) == expected
    assert expected == [True, True, False, True, False, True, True, True, False, True, True, False, True]
    # A root that is a prefix of a sibling's name does not admit the sibling.
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "g.png").write_bytes(b"x")
    assert items_within(folder, ["../../root2/g.png"], [str(root)]) == [False]
