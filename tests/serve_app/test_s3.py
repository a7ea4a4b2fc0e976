"""Tasks on an S3-compatible store (moto's server on loopback) through the real API, Ray jobs and workers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from jobs import storage
from tests.conftest import Service
from tests.support import s3
from tests.support.images import make_known_set

pytestmark = pytest.mark.ray

ANALYSE = {"id": "sys_data_analyse", "operator_params": [{"id": "image_features", "params": {}}]}


@pytest.fixture
def bucket_prefix(s3_server: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """The known image set, uploaded under a prefix of its own in the allowed bucket."""
    make_known_set(folder)
    s3.upload_folder(folder, s3.BUCKET, request.node.name)
    return f"s3://{s3.BUCKET}/{request.node.name}"


def _features(task: dict) -> dict[str, dict]:
    out = Path(task["work_path"]["output_path"]) / "features.jsonl"
    return {r["item"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_analysis_from_a_bucket(service: Service, bucket_prefix: str, folder: Path) -> None:
    key = bucket_prefix.split("/", 3)[3]
    # A missing object named by a manifest is one failed item; the rest of the run goes on.
    manifest = [{"image": name} for name in ("dark.png", "bright.png", "sub/noise.png", "gone.png",
                                             "truncated.png")]
    s3.s3_client().put_object(Bucket=s3.BUCKET, Key=f"{key}/list.jsonl",
                              Body="\n".join(json.dumps(m) for m in manifest).encode())

    folder_task = service.create(bucket_prefix.replace("s3://", "obs://", 1), template=ANALYSE)
    manifest_task = service.create(f"{bucket_prefix}/list.jsonl", template=ANALYSE)
    task = service.wait_status(folder_task, 2, allowed={0, 1})
    assert (task["processed_count"], task["failed_count"]) == (5, 2)
    assert {f["item"]: f["error_code"] for f in task["result"]["failed_items"]} == {
        "truncated.png": "truncated", "text.jpg": "not_an_image"}
    rows = _features(task)
    assert rows["dark.png"]["brightness"] == pytest.approx(10 / 255, abs=1e-3)

    task = service.wait_status(manifest_task, 2, allowed={0, 1})
    assert (task["processed_count"], task["failed_count"]) == (3, 2)
    assert {f["item"]: f["error_code"] for f in task["result"]["failed_items"]} == {
        "gone.png": "object_not_found", "truncated.png": "truncated"}
    assert _features(task)["dark.png"] == rows["dark.png"]

    # The drivers read the store with the service's AWS configuration; the secret is in no job record.
    jobs = httpx.get(f"{service.dashboard_url}/api/jobs/", timeout=30, headers=_ray_auth()).text
    assert task["ray_job_id"] in jobs
    assert s3.SECRET_KEY not in jobs
    assert s3.SECRET_KEY not in json.dumps(service.get(folder_task))


@pytest.mark.parametrize("source", [
    f"s3://{s3.OUTSIDE_BUCKET}/data", f"s3://{s3.BUCKET}x/data", "s3://../etc",
], ids=["other-bucket", "bucket-name-prefix", "malformed"])
def test_location_outside_the_allowed_buckets_is_400(service: Service, s3_server: str, source: str) -> None:
    r = service.client.post(service.tasks(), json={"name": "t", "data_source": {"type": "OBS", "source": source},
                                                    "template": ANALYSE})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "path_not_allowed"
    assert "Traceback" not in r.text


def test_missing_prefix_is_400(service: Service, s3_server: str) -> None:
    r = service.client.post(service.tasks(), json={
        "name": "t", "data_source": {"type": "OBS", "source": f"s3://{s3.BUCKET}/no-such-prefix"},
        "template": ANALYSE})
    assert r.status_code == 400, r.text
    assert "does not exist" in r.json()["error_msg"]


def _ray_auth() -> dict[str, str]:
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}


def test_import_from_a_bucket_prefix(service: Service, s3_server: str, tmp_path: Path) -> None:
    from tests.serve_app.test_imports import P, _dataset, _import
    from tests.support.images import make_many

    make_many(tmp_path / "sub", 2)
    make_many(tmp_path, 1)
    s3.upload_folder(tmp_path, s3.BUCKET, "import-prefix")
    prefix = f"obs://{s3.BUCKET}/import-prefix"
    status = _import(service, {"folder": prefix, "recursive": True}, dataset="from-bucket")
    assert status["task_count"] == 3
    ds = _dataset(service, "from-bucket")
    items = service.client.get(f"/v2/{P}/datasets/{ds['dataset_id']}/items").json()["items"]
    assert sorted(i["image"] for i in items) == [
        f"s3://{s3.BUCKET}/import-prefix/{k}" for k in ("img_0000.png", "sub/img_0000.png", "sub/img_0001.png")]
    assert _import(service, {"folder": prefix, "recursive": False}, dataset="from-bucket-flat")["task_count"] == 1

    # The dataset's items are read back from the bucket by a task.
    r = service.client.post(service.tasks(P), json={
        "name": "t", "data_source": {"type": "DATASET", "source": ds["dataset_id"]}, "template": ANALYSE})
    assert r.status_code == 200, r.text
    task = service.wait_status(r.json()["task_id"], 2, allowed={0, 1}, project=P)
    assert (task["processed_count"], task["failed_count"]) == (3, 0)

    r = service.client.post(f"/api/projects/{P}/import", json={"folder": f"s3://{s3.OUTSIDE_BUCKET}/x"})
    assert r.status_code == 400 and r.json()["error_code"] == "path_not_allowed", r.text


# ----- work paths in a bucket ------------------------------------------------------------------


CLEAN_COPY = {"id": "sys_data_cleaning", "operator_params": [{"id": "data_cleaning", "params": {"output": "copy"}}]}
AUGMENT = {"id": "sys_data_augmentation", "operator_params": [
    {"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]}


def _in_bucket(task: dict, name: str) -> bytes:
    """An output file of ``task``, read from the bucket its work path is in."""
    uri = storage.ObjectUri.parse(task["work_path"]["output_path"]).join(name)
    return s3.s3_client().get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()


def _keys(task: dict, under: str) -> list[str]:
    uri = storage.ObjectUri.parse(task["work_path"]["output_path"]).join(under)
    pages = s3.s3_client().get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=uri.key + "/")
    return sorted(o["Key"][len(uri.key) + 1:] for page in pages for o in page.get("Contents", []))


def test_outputs_of_analysis_cleaning_and_augmentation_land_in_the_bucket(
        service: Service, bucket_prefix: str, folder: Path, request: pytest.FixtureRequest) -> None:
    work = {"type": "OBS", "path": f"s3://{s3.BUCKET}/work/{request.node.name}"}
    key = bucket_prefix.split("/", 3)[3]
    s3.s3_client().put_object(Bucket=s3.BUCKET, Key=f"{key}/copy-of-dark.png", Body=(folder / "dark.png").read_bytes())
    # Analysis of local files, cleaning bucket to bucket, augmentation of local files: all into the bucket.
    analysis = service.create(folder, template=ANALYSE, work_path=work)
    cleaning = service.create(bucket_prefix, template=CLEAN_COPY, work_path=work)
    augmentation = service.create(folder, template=AUGMENT, work_path=work)

    task = service.wait_status(analysis, 2, allowed={0, 1})
    assert task["work_path"]["output_path"] == f"{work['path']}/{analysis}"
    assert (task["processed_count"], task["failed_count"]) == (5, 2)
    assert json.loads(_in_bucket(task, "result.json")) == task["result"]
    rows = {r["item"]: r for r in map(json.loads, _in_bucket(task, "features.jsonl").splitlines())}
    assert rows["dark.png"]["brightness"] == pytest.approx(10 / 255, abs=1e-3)
    assert [k for k in _keys(task, ".rayproc/parts")] == ["000000.jsonl"]  # 7 items: one chunk of 8
    r = service.client.get(f"{service.tasks()}/{analysis}/report")  # drawn from the bucket's files
    assert r.status_code == 200 and "5 of 7 items read (71.4%), 2 unreadable (28.6%)." in r.text, r.text[-500:]

    task = service.wait_status(cleaning, 2, allowed={0, 1})
    kept = sorted(r["item"] for r in map(json.loads, _in_bucket(task, "kept.jsonl").splitlines()))
    assert kept == ["blurry.png", "bright.png", "copy-of-dark.png", "sharp.png", "sub/noise.png"]
    assert task["result"]["cleaning"]["removed_by_reason"] == {"corrupt": 2, "exact_duplicate_of": 1}
    assert _keys(task, "kept") == kept
    assert _in_bucket(task, "kept/copy-of-dark.png") == (folder / "dark.png").read_bytes()
    r = service.client.get(f"{service.tasks()}/{cleaning}/report")  # kept.jsonl and removed.jsonl from the bucket
    assert r.status_code == 200 and "Kept 5 of 8 items (62.5%); removed 3 (37.5%)." in r.text, r.text[-500:]
    assert "data-item='copy-of-dark.png'" in r.text  # the exact duplicate shown beside what it duplicates

    task = service.wait_status(augmentation, 2, allowed={0, 1})
    made = [k for k in _keys(task, "augmented")]
    assert made == [f"{stem}__aug0.png" for stem in ("blurry", "bright", "dark", "sharp", "sub/noise")]
    manifest = [json.loads(line) for line in _in_bucket(task, "augmented.jsonl").splitlines()]
    assert sorted(m["image"] for m in manifest) == [f"augmented/{name}" for name in made]
    from tests.serve_app.test_report import parse

    r = service.client.get(f"{service.tasks()}/{augmentation}/report")  # the copies' thumbnails from the bucket
    assert r.status_code == 200, r.text
    shown = {f["item"]: f["src"] for f in parse(r.text).figures if f["item"].startswith("augmented/")}
    assert sorted(shown) == [f"augmented/{name}" for name in made] and all(shown.values())


def test_stop_and_resume_with_the_work_path_in_a_bucket_match_an_uninterrupted_run(
        service: Service, folder: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from collections import Counter

    from tests.support.images import make_many

    n = 16
    make_many(folder, n)
    work = {"type": "OBS", "path": f"s3://{s3.BUCKET}/work/{request.node.name}"}

    def template(log: Path, delay: float) -> dict:
        return {"id": "sys_data_analyse", "operator_params": [
            {"id": "image_features", "params": {}},
            {"id": "work_probe", "params": {"delay_seconds": delay, "log_path": str(log)}}]}

    log = tmp_path / "work.log"
    task_id = service.create(folder, template=template(log, 0.1), execution={"chunk_size": 2}, work_path=work)
    ref_id = service.create(folder, template=template(tmp_path / "ref.log", 0.0), execution={"chunk_size": 2},
                            work_path=work)
    service.wait(task_id, lambda t: t["processed_count"] >= 4, allowed={0, 1})
    r = service.client.post(f"{service.tasks()}/{task_id}/stop")
    assert r.status_code == 200, r.text
    stopped = service.wait_status(task_id, 4, allowed={1})
    assert 4 <= stopped["processed_count"] < n, "the stop must land mid-run for this test to mean anything"
    assert len(_keys(stopped, ".rayproc/parts")) == stopped["processed_count"] // 2  # committed parts, in the bucket

    r = service.client.post(f"{service.tasks()}/{task_id}/resume")
    assert r.status_code == 200, r.text
    final = service.wait_status(task_id, 2, allowed={0, 1})
    work_done = Counter(log.read_text().splitlines())
    assert set(work_done) == {f"img_{i:04d}.png" for i in range(n)}
    assert max(work_done.values()) == 1, f"items processed twice: {[k for k, v in work_done.items() if v > 1]}"

    ref = service.wait_status(ref_id, 2, allowed={0, 1})
    for name in ("features.jsonl", "failures.jsonl", "result.json"):
        assert _in_bucket(final, name) == _in_bucket(ref, name), name
    assert final["result"] == ref["result"]
    logs = service.client.get(f"{service.tasks()}/{task_id}/logs", params={"run": 1})
    assert logs.status_code == 200 and "finished: stopped" in logs.text.lower(), logs.text[-500:]


@pytest.mark.parametrize("path, code, says", [
    (f"s3://{s3.OUTSIDE_BUCKET}/work", "path_not_allowed", "outside the allowed roots"),
    (f"s3://{s3.BUCKET}x/work", "path_not_allowed", "outside the allowed roots"),
    (f"s3://{s3.BUCKET}/work/../../elsewhere", "path_not_allowed", "must not contain '..'"),
    (f"s3://{s3.ABSENT_BUCKET}/work", "invalid_parameter", f"the bucket '{s3.ABSENT_BUCKET}' does not exist"),
], ids=["other-bucket", "bucket-name-prefix", "malformed", "missing-bucket"])
def test_a_work_path_the_service_cannot_use_is_400(service: Service, s3_server: str, folder: Path, path: str,
                                                   code: str, says: str) -> None:
    make_known_set(folder)
    before = service.client.get(service.tasks()).json()["count"]
    r = service.client.post(service.tasks(), json={"name": "t", "data_source": {"type": "OBS", "source": str(folder)},
                                                    "template": ANALYSE, "work_path": {"type": "OBS", "path": path}})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == code and says in r.json()["error_msg"], r.text
    assert "Traceback" not in r.text and s3.SECRET_KEY not in r.text
    assert service.client.get(service.tasks()).json()["count"] == before  # nothing was recorded


def test_a_source_in_a_missing_bucket_is_400(service: Service, s3_server: str) -> None:
    r = service.client.post(service.tasks(), json={
        "name": "t", "data_source": {"type": "OBS", "source": f"s3://{s3.ABSENT_BUCKET}/data"}, "template": ANALYSE})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_parameter", r.text
    assert "does not exist" in r.json()["error_msg"]


# ----- reports of a task whose work path is in a bucket ------------------------------------------------------------


#: make_dataset's properties as the report's issue types name them.
ISSUE_OF = {"dark": "dark", "light": "light", "blurry": "blurry", "exact_duplicate": "exact_duplicates",
            "near_duplicate": "near_duplicates", "odd_aspect_ratio": "odd_aspect_ratio", "grayscale": "grayscale"}


def test_report_with_the_source_and_the_work_path_in_a_bucket(service: Service, s3_server: str, tmp_path: Path,
                                                              request: pytest.FixtureRequest) -> None:
    """The report's counts, charts, thumbnails and file links, all read from the bucket; `rayproc report` saves
    it; a listed output that is gone or not text is a 4xx with the one error body."""
    import subprocess
    import sys
    from collections import Counter

    from tests.serve_app.test_report import FLAGGED, decoded, parse
    from tests.support.dataset import make_dataset

    props = make_dataset(tmp_path / "ds")
    prefix = f"report-{request.node.name}"
    s3.upload_folder(tmp_path / "ds", s3.BUCKET, prefix)
    work = {"type": "OBS", "path": f"s3://{s3.BUCKET}/work/{request.node.name}"}
    task = service.wait_status(service.create(f"s3://{s3.BUCKET}/{prefix}", template={"id": "sys_data_analyse"},
                                              work_path=work, name="bucket report"), 2, allowed={0, 1})
    assert task["work_path"]["output_path"].startswith(work["path"])
    report_url = f"{service.tasks()}/{task['task_id']}/report"
    r = service.client.get(report_url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text
    doc = parse(r.text)
    # make_dataset's known issues, one image each (two exact and two near duplicates), counted in the headline,
    # as for a server folder (FLAGGED).
    headline = doc.text["headline"]
    known = Counter(ISSUE_OF[p] for p in props.values() if p in ISSUE_OF)
    read = sum(p != "corrupt" for p in props.values())
    assert (read, sum(known.values())) == (15, FLAGGED)
    assert f"{read} of {len(props)} items read (93.8%), 1 unreadable (6.2%)." in headline
    assert (f"{sum(known.values())} images (60.0% of those read) have at least one issue: "
            + ", ".join(f"{n} {issue}" for issue, n in sorted(known.items())) + ".") in headline
    thumbs = {(f["section"], f["item"]): f["src"] for f in doc.figures}
    assert decoded(thumbs[("issue-dark", "dark.png")]).mean() < 30  # the worst examples, read from the bucket
    # The charts re-binned from the bucket's features.jsonl, and saved beside the outputs, in the bucket.
    charts = {k.removesuffix(".png") for k in _keys(task, "report")}
    assert charts >= {"brightness", "blur_score", "entropy"} and r.text.count("class='chart'") == len(charts)
    # Every output link answers the object's bytes.
    outputs = task["result"]["outputs"]
    for name in ("features.jsonl", "issues.jsonl", "failures.jsonl"):
        assert name in outputs.values() and f"href='files/{name}'" in r.text
        got = service.client.get(f"{service.tasks()}/{task['task_id']}/files/{name}")
        assert got.status_code == 200 and got.content == _in_bucket(task, name), name

    # rayproc report: the same page, saved with absolute links, and the charts as files.
    out = tmp_path / "saved"
    token = service.client.headers["Authorization"].split(" ", 1)[1]
    proc = subprocess.run([str(Path(sys.executable).with_name("rayproc")), "report", task["task_id"], "--url",
                           service.url, "--token", token, "--project", "p1", "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    saved = (out / "report.html").read_text()
    assert "15 of 16 items read (93.8%)" in saved
    assert f"href='{service.url}/v2/p1/processor-tasks/{task['task_id']}/files/issues.jsonl'" in saved
    assert {Path(c).stem for c in json.loads(proc.stdout)["charts"]} == charts

    # A listed output that is gone: 404 for the report and for its link, nothing else changed.
    uri = storage.ObjectUri.parse(task["work_path"]["output_path"])
    issues = _in_bucket(task, "issues.jsonl")
    s3.s3_client().delete_object(Bucket=uri.bucket, Key=f"{uri.key}/issues.jsonl")
    for url in (report_url, f"{service.tasks()}/{task['task_id']}/files/issues.jsonl"):
        got = service.client.get(url)
        assert got.status_code == 404 and got.json()["error_code"] == "not_found", got.text
        assert "issues.jsonl" in got.json()["error_msg"] and "Traceback" not in got.text
        assert s3.SECRET_KEY not in got.text
    # One that is not text: 400.
    s3.s3_client().put_object(Bucket=uri.bucket, Key=f"{uri.key}/issues.jsonl", Body=b"\xff\xfe\x00garbage\n")
    got = service.client.get(report_url)
    assert got.status_code == 400 and got.json()["error_code"] == "invalid_state", got.text
    assert "issues.jsonl" in got.json()["error_msg"] and "Traceback" not in got.text
    # Put back, the report is whole again; the task record never changed.
    s3.s3_client().put_object(Bucket=uri.bucket, Key=f"{uri.key}/issues.jsonl", Body=issues)
    assert service.client.get(report_url).status_code == 200
    assert service.get(task["task_id"])["result"] == task["result"]
