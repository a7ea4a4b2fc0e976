"""Object locations: URIs, confinement to allowed buckets, listing and reading from a real S3-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import runner, storage
from jobs.chunk import process_chunk
from jobs.layout import RunLayout
from jobs.sources import PathNotAllowed, items_within, list_items, resolve_location
from jobs.status import TaskStatus
from jobs.store import Store
from operators.pipeline import ERROR_CODE, FAILED, ITEM, OK, STATUS
from tests.support import images, s3
from tests.support.dataset import make_dataset

ANALYSE = [{"id": "image_features", "params": {}}, {"id": "image_issues", "params": {}}]


@pytest.mark.parametrize("uri, bucket, key", [
    ("s3://b/data/x.png", "b", "data/x.png"), ("obs://b/data/", "b", "data"), ("S3://b", "b", ""),
], ids=["object", "obs-alias-trailing-slash", "bucket"])
def test_parse(uri: str, bucket: str, key: str) -> None:
    parsed = storage.ObjectUri.parse(uri)
    assert (parsed.bucket, parsed.key) == (bucket, key)


@pytest.mark.parametrize("uri", ["s3://", "s3:///k", "s3://b/../c", "/local/path"])
def test_parse_refuses(uri: str) -> None:
    with pytest.raises(ValueError):
        storage.ObjectUri.parse(uri)


@pytest.mark.parametrize("uri, allowed", [
    ("s3://b/data", True), ("s3://b/data/x/y.png", True), ("obs://b/data/x.png", True),
    ("s3://b/database", False), ("s3://b", False), ("s3://other/data", False),
], ids=["root", "below", "obs-alias", "sibling-prefix", "bucket-above", "other-bucket"])
def test_prefix_boundary(uri: str, allowed: bool) -> None:
    roots = ["/srv/data", "s3://b/data"]
    if allowed:
        assert resolve_location(uri, roots, must_exist=False).startswith("s3://b/data")
    else:
        with pytest.raises(PathNotAllowed):
            resolve_location(uri, roots, must_exist=False)


def test_object_root_never_allows_a_local_path(tmp_path: Path) -> None:
    # An s3 root must not be read as a relative local folder named "s3:".
    with pytest.raises(PathNotAllowed):
        resolve_location(str(tmp_path), ["s3://b"], must_exist=False)


def test_items_within_objects() -> None:
    assert items_within("s3://b/data", ["x.png", "s3://b/data/y.png", "s3://b/database/z.png"],
                        ["s3://b/data"]) == [True, True, False]


@pytest.fixture
def prefix(s3_server: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """A folder of known images, uploaded under a prefix of its own; returns (s3 URI, local folder)."""
    local = tmp_path / "local"
    images.make_known_set(local)
    name = request.node.name.replace("[", "_").replace("]", "")
    s3.upload_folder(local, s3.BUCKET, name)
    return f"s3://{s3.BUCKET}/{name}", local


def test_list_prefix_like_a_folder(prefix: tuple[str, Path]) -> None:
    uri, local = prefix
    root, items = list_items(uri)
    assert root == uri
    assert items == list_items(local)[1]
    assert storage.exists(storage.ObjectUri.parse(uri))
    assert not storage.exists(storage.ObjectUri.parse(f"{uri}-absent"))


def test_manifest_in_bucket(prefix: tuple[str, Path]) -> None:
    uri, _ = prefix
    other = f"s3://{s3.BUCKET}/{uri.rsplit('/', 1)[1]}/sub/noise.png"
    lines = [{"image": "dark.png", "label": "d"}, {"source": other}, {"nothing": 1}]
    key = f"{uri.split('/', 3)[3]}/manifest.jsonl"
    s3.s3_client().put_object(Bucket=s3.BUCKET, Key=key, Body="\n".join(json.dumps(x) for x in lines).encode())
    root, items = list_items(f"{uri}/manifest.jsonl")
    assert root == uri
    assert items[0] == {"key": "dark.png", "label": "d"}
    assert items[1] == other
    assert items[2]["error"].startswith("line 3 names no image")


def test_chunk_from_bucket_equals_local(prefix: tuple[str, Path], tmp_path: Path) -> None:
    uri, local = prefix
    keys = list_items(local)[1]
    remote = process_chunk([], ANALYSE, uri, keys, [f"s3://{s3.BUCKET}"])
    on_disk = process_chunk([], ANALYSE, str(local), keys, [str(local)])
    assert remote == on_disk
    assert {r[ITEM]: r[STATUS] for r in remote}["dark.png"] == OK


def test_missing_object_is_one_failed_item(prefix: tuple[str, Path]) -> None:
    uri, _ = prefix
    records = process_chunk([], ANALYSE, uri, ["dark.png", "gone.png", f"s3://{s3.BUCKET}/nope/x.png"],
                            [f"s3://{s3.BUCKET}"])
    by_item = {r[ITEM]: r for r in records}
    assert by_item["dark.png"][STATUS] == OK
    for key in ("gone.png", f"s3://{s3.BUCKET}/nope/x.png"):
        assert by_item[key][STATUS] == FAILED
        assert by_item[key][ERROR_CODE] == storage.OBJECT_NOT_FOUND


def test_object_outside_allowed_bucket_fails_its_item(prefix: tuple[str, Path]) -> None:
    uri, _ = prefix
    records = process_chunk([], ANALYSE, uri, ["dark.png", f"s3://{s3.OUTSIDE_BUCKET}/x.png"],
                            [f"s3://{s3.BUCKET}"])
    assert [r[STATUS] for r in records] == [OK, FAILED]
    assert records[1][ERROR_CODE] == "path_not_allowed"


def test_failed_reads_are_retried(prefix: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    uri, local = prefix
    real = storage._filesystem()
    calls = {"n": 0}

    class Flaky:
        def open_input_stream(self, path: str):
            calls["n"] += 1
            if calls["n"] < 3:
                raise OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce your request rate.")
            return real.open_input_stream(path)

    monkeypatch.setattr(storage, "_filesystem", lambda: Flaky())
    data = storage.read_bytes(storage.ObjectUri.parse(f"{uri}/dark.png"), backoff=0.01)
    assert data == (local / "dark.png").read_bytes()
    assert calls["n"] == 3


def _run_bucket_task(tmp_path: Path, source: str, bucket_root: str) -> tuple[int, object]:
    """Run an analysis of ``source`` in-process with the runner's roots ``tmp_path`` and ``bucket_root``:
    (exit code, task record)."""
    store = Store(tmp_path / "db.sqlite")
    store.insert_task({
        "task_id": "t1", "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": source, "version_id": None,
        "version_name": None, "data_source": None, "inputs": [],
        "template": {"id": "sys_data_analyse", "operator_params": ANALYSE},
        "work_path": {}, "input_root": source, "output_dir": str(tmp_path / "out"), "execution": {"chunk_size": 32},
        "current_run": "r1",
    })
    code = runner.main(["--db", store.path, "--task-id", "t1", "--run-id", "r1", "--allowed-root", str(tmp_path),
                        "--allowed-root", bucket_root])
    return code, store.get_task("t1")


def test_run_from_bucket_confirms_exact_duplicates(prefix: tuple[str, Path], tmp_path: Path) -> None:
    uri, local = prefix
    key = uri.split("/", 3)[3]
    s3.s3_client().put_object(Bucket=s3.BUCKET, Key=f"{key}/copy-of-dark.png",
                              Body=(local / "dark.png").read_bytes())
    code, rec = _run_bucket_task(tmp_path, uri, f"s3://{s3.BUCKET}")
    assert code == 0
    assert rec.status == TaskStatus.COMPLETED, rec.error_msg
    assert (rec.processed_count, rec.failed_count) == (6, 2)
    assert ["copy-of-dark.png", "dark.png"] in rec.result["issues"]["exact_duplicate_groups"]


def test_runner_rechecks_bucket_roots(prefix: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = prefix
    # The service allowed the bucket when the task was made; the runner's roots no longer do.
    code, rec = _run_bucket_task(tmp_path, uri, f"s3://{s3.BUCKET}/elsewhere")
    assert code == 1
    assert (rec.status, rec.error_type) == (TaskStatus.FAILED, "path_not_allowed")


def test_augmentation_from_bucket_writes_files_named_after_the_keys(prefix: tuple[str, Path], tmp_path: Path) -> None:
    uri, _ = prefix
    out = tmp_path / "out"
    specs = [{"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]
    items = [{"key": "sharp.png", "boxes": [{"bbox": [0, 0, 10, 10], "label": "a"}]}, "sub/noise.png"]
    records = process_chunk([], specs, uri, items, [f"s3://{s3.BUCKET}"], str(out))
    assert [(r[ITEM], r[STATUS]) for r in records] == [("sharp.png", OK), ("sub/noise.png", OK)]
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert made == ["augmented/sharp__aug0.png", "augmented/sub/noise__aug0.png"]


# ----- a task's files in a bucket ------------------------------------------------------------


def _bucket_path(request: pytest.FixtureRequest, *parts: str) -> storage.ObjectPath:
    name = request.node.name.replace("[", "_").replace("]", "")
    return storage.ObjectPath("/".join([f"s3://{s3.BUCKET}", "work", name, *parts]))


def test_object_path_reads_and_writes_whole_objects(s3_server: str, request: pytest.FixtureRequest) -> None:
    from jobs.atomic import AtomicFile, write_atomic

    folder = _bucket_path(request)
    write_atomic(folder / "a.json", '{"x": 1}')
    write_atomic(folder / "b.jsonl", (f"{i}\n" for i in range(3)))
    assert (folder / "a.json").read_text() == '{"x": 1}'
    with (folder / "b.jsonl").open() as fh:
        assert list(fh) == ["0\n", "1\n", "2\n"]
    assert [p.name for p in folder.glob("*.jsonl")] == ["b.jsonl"]
    assert (folder / "a.json").stat().st_size == 8 and folder.exists() and not (folder / "none").exists()
    with pytest.raises(FileNotFoundError):
        (folder / "none").read_text()
    # A writer that fails leaves the object it was replacing as it was, never a part of the new one.
    with pytest.raises(RuntimeError), AtomicFile(folder / "a.json") as fh:
        fh.write('{"x": 2, "half": ')
        raise RuntimeError("the writer failed midway")
    assert (folder / "a.json").read_text() == '{"x": 1}'
    with pytest.raises(TypeError):
        open(folder / "a.json")  # an object is never opened as a local file by mistake
    with pytest.raises(FileNotFoundError, match="does not exist"):
        storage.ObjectPath("s3://rayproc-no-such-bucket/x").write_bytes(b"")


def _run(tmp_path: Path, source: str, output: str, template: dict, roots: list[str],
         task_id: str = "t1") -> tuple[int, object]:
    store = Store(tmp_path / "db.sqlite")
    store.insert_task({
        "task_id": task_id, "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": template["id"], "source_type": "OBS", "source": source, "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": template,
        "work_path": {}, "input_root": source, "output_dir": output, "execution": {"chunk_size": 32},
        "current_run": f"{task_id}-r1",
    })
    args = ["--db", store.path, "--task-id", task_id, "--run-id", f"{task_id}-r1"]
    code = runner.main(args + [a for r in roots for a in ("--allowed-root", r)])
    return code, store.get_task(task_id)


OUTPUTS = ("features.jsonl", "failures.jsonl", "result.json")


def test_outputs_and_parts_in_a_bucket_equal_a_local_run(prefix: tuple[str, Path], tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    uri, local = prefix
    template = {"id": "sys_data_analyse", "operator_params": ANALYSE}
    roots = [str(tmp_path), f"s3://{s3.BUCKET}"]
    work = _bucket_path(request)
    code, rec = _run(tmp_path, uri, str(work / "t1"), template, roots)
    assert (code, rec.status) == (0, TaskStatus.COMPLETED), rec.error_msg
    code, on_disk = _run(tmp_path, str(local), str(tmp_path / "out"), template, roots, task_id="t2")
    assert on_disk.status == TaskStatus.COMPLETED, on_disk.error_msg
    for name in OUTPUTS:  # same bytes, wherever the outputs and the source were
        assert (work / "t1" / name).read_bytes() == (tmp_path / "out" / name).read_bytes(), name
    # The chunk is committed as one object under the hidden state prefix (one chunk: no cluster needed here).
    layout = RunLayout(str(work / "t1"))
    assert layout.in_bucket and [p.name for p in layout.parts_dir.glob("*.jsonl")] == ["000000.jsonl"]
    assert layout.read_result() == rec.result
    assert layout.read_manifest()["root"] == uri
    assert not list(tmp_path.glob("s3*")), "nothing of the bucket's layout may land on local disk"


def test_cleaning_copies_kept_objects_bucket_to_bucket(prefix: tuple[str, Path], tmp_path: Path,
                                                       request: pytest.FixtureRequest) -> None:
    uri, local = prefix
    key = uri.split("/", 3)[3]
    s3.s3_client().put_object(Bucket=s3.BUCKET, Key=f"{key}/copy-of-dark.png", Body=(local / "dark.png").read_bytes())
    template = {"id": "sys_data_cleaning", "operator_params": [
        {"id": "image_features", "params": {}}, {"id": "image_issues", "params": {}},
        {"id": "data_cleaning", "params": {"output": "copy"}}]}
    out = _bucket_path(request, "t1")
    code, rec = _run(tmp_path, uri, str(out), template, [str(tmp_path), f"s3://{s3.BUCKET}"])
    assert (code, rec.status) == (0, TaskStatus.COMPLETED), rec.error_msg
    kept = [json.loads(line) for line in (out / "kept.jsonl").read_text().splitlines()]
    kept_items = sorted(row[ITEM] for row in kept)
    # The first of the exact duplicates in item order stays.
    assert "copy-of-dark.png" in kept_items and "dark.png" not in kept_items
    assert all(row["image"] == f"{uri}/{row[ITEM]}" for row in kept)  # the rows name the inputs, not a temp copy
    assert sorted(k for k, _ in (out / "kept").walk_files()) == kept_items
    for item in kept_items:
        assert (out / "kept" / item).read_bytes() == (local / item.replace("copy-of-", "")).read_bytes()


def test_augmentation_writes_its_images_to_a_bucket(prefix: tuple[str, Path], request: pytest.FixtureRequest) -> None:
    uri, local = prefix
    out = _bucket_path(request)
    specs = [{"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]
    to_bucket = process_chunk([], specs, uri, ["sharp.png", "sub/noise.png"], [f"s3://{s3.BUCKET}"], str(out))
    on_disk = process_chunk([], specs, str(local), ["sharp.png", "sub/noise.png"], [str(local)],
                            str(local.parent / "aug"))
    assert to_bucket == on_disk
    made = sorted(k for k, _ in out.walk_files())
    assert made == ["augmented/sharp__aug0.png", "augmented/sub/noise__aug0.png"]
    for name in made:
        assert (out / name).read_bytes() == (local.parent / "aug" / name).read_bytes()


def test_work_path_in_a_missing_bucket_fails_the_run_as_an_output_error(prefix: tuple[str, Path],
                                                                        tmp_path: Path) -> None:
    uri, _ = prefix
    template = {"id": "sys_data_analyse", "operator_params": ANALYSE}
    code, rec = _run(tmp_path, uri, "s3://rayproc-no-such-bucket/out/t1", template,
                     [str(tmp_path), f"s3://{s3.BUCKET}", "s3://rayproc-no-such-bucket"])
    assert (code, rec.status, rec.error_type) == (1, TaskStatus.FAILED, "output_error")
    assert "does not exist" in rec.error_msg


def test_an_ended_runs_log_is_kept_in_a_bucket_work_path_and_read_back(s3_server: str, tmp_path: Path,
                                                                        request: pytest.FixtureRequest) -> None:
    from jobs.launcher import JobLauncher
    from serve_app.job_records import JobRecords, kept_log
    from tests.serve_app.test_job_records import HOUR_MS, NOW, _job, _Jobs

    out = _bucket_path(request, "t1")
    store = Store(tmp_path / "db.sqlite")
    store.insert_task({
        "task_id": "t1", "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(tmp_path), "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {"id": "sys_data_analyse"},
        "work_path": {}, "input_root": str(tmp_path), "output_dir": str(out), "execution": {"chunk_size": 8},
        "current_run": "t1-r1",
    })
    _Jobs.jobs = [_job("t1-r1", "t1", "SUCCEEDED", NOW - 2 * HOUR_MS), _job("t1-r2", "t1", "RUNNING", None)]
    _Jobs.logs, _Jobs.deleted, _Jobs.asked = {"t1-r1": "the run's log\n"}, [], []
    records = JobRecords(store, JobLauncher("http://ray", client_factory=_Jobs), retention_seconds=3600,
                         clock=lambda: NOW)
    assert records.tidy() == (1, 1)
    assert (out / ".rayproc" / "runs" / "t1-r1.log").read_text() == "the run's log\n"
    assert kept_log(str(out), "t1-r1") == "the run's log\n"
    assert kept_log(str(out), "t1-r2") is None
    assert records.tidy() == (0, 1) and _Jobs.asked == ["t1-r1"]  # kept once: the object is found the next time


def test_a_task_whose_outputs_are_in_a_bucket_is_the_source_of_the_next(prefix: tuple[str, Path], tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    from types import SimpleNamespace

    from jobs.chain import chain_source
    from operators.registry import default_registry

    uri, _ = prefix
    template = {"id": "sys_data_augmentation", "operator_params": [
        {"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]}
    out = _bucket_path(request, "t1")
    code, rec = _run(tmp_path, uri, str(out), template, [str(tmp_path), f"s3://{s3.BUCKET}"])
    assert (code, rec.status) == (0, TaskStatus.COMPLETED), rec.error_msg
    upstream = SimpleNamespace(task_id="t1", output_dir=str(out), input_root=uri, template=rec.template)
    source = chain_source(upstream, tmp_path / "sources", default_registry())
    root, items = list_items(source)
    images = sorted(item["key"] if isinstance(item, dict) else item for item in items)
    assert images == [f"{out}/augmented/{stem}__aug0.png" for stem in ("blurry", "bright", "dark", "sharp",
                                                                         "sub/noise")]
    # The next task reads those objects from the bucket, as any other source's.
    records = process_chunk([], ANALYSE, str(root), images, [f"s3://{s3.BUCKET}"])
    assert [r[STATUS] for r in records] == [OK] * 5


def test_near_duplicates_from_a_bucket_are_confirmed_as_from_a_folder(s3_server: str, tmp_path: Path) -> None:
    """Finalize checks near-duplicate pairs on their pictures; from a bucket it fetches just those."""
    local = tmp_path / "local"
    make_dataset(local)  # near_a.png and near_b.jpg: one picture, re-encoded
    s3.upload_folder(local, s3.BUCKET, "near-dups")
    template = {"id": "sys_data_analyse", "operator_params": ANALYSE}
    roots = [str(tmp_path), f"s3://{s3.BUCKET}"]
    code, on_bucket = _run(tmp_path, f"s3://{s3.BUCKET}/near-dups", str(tmp_path / "bucket-out"), template, roots)
    assert (code, on_bucket.status) == (0, TaskStatus.COMPLETED), on_bucket.error_msg
    code, on_disk = _run(tmp_path, str(local), str(tmp_path / "disk-out"), template, roots, task_id="t2")
    assert on_disk.status == TaskStatus.COMPLETED, on_disk.error_msg
    groups = on_bucket.result["issues"]["near_duplicate_groups"]
    assert ["near_a.png", "near_b.jpg"] in groups
    assert groups == on_disk.result["issues"]["near_duplicate_groups"]
    assert on_bucket.result["issues"]["counts"] == on_disk.result["issues"]["counts"]
