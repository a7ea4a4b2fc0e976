"""Object locations: URIs, confinement to allowed buckets, listing and reading from a real S3-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import runner, storage
from jobs.chunk import process_chunk
from jobs.sources import PathNotAllowed, items_within, list_items, resolve_location
from jobs.status import TaskStatus
from jobs.store import Store
from operators.pipeline import ERROR_CODE, FAILED, ITEM, OK, STATUS
from tests.support import images, s3

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
