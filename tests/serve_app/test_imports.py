"""Label Studio-compatible asynchronous import, datasets and versions, against the real service."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray
P = "imports"


def _wait_import(service: Service, import_id: int, project: str = P, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = service.client.get(f"/api/projects/{project}/imports/{import_id}/")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] in ("created", "in_progress", "completed"), body
        if body["status"] == "completed":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _import(service: Service, items, *, query: str = "", project: str = P, dataset: str | None = None) -> dict:
    url = f"/api/projects/{project}/import?{query}" + (f"&dataset={dataset}" if dataset else "")
    r = service.client.post(url, json=items)
    assert r.status_code == 201, r.text
    assert set(r.json()) == {"import"}
    return _wait_import(service, r.json()["import"], project)


def _dataset(service: Service, name: str, project: str = P) -> dict:
    found = [d for d in service.client.get(f"/v2/{project}/datasets").json()["datasets"] if d["name"] == name]
    assert len(found) == 1
    return found[0]


def test_the_seed_example_works_as_written(service: Service) -> None:
    token = service.client.headers["Authorization"].removeprefix("Token ")
    client = service.client_for(token)
    r = client.post(f"/api/projects/{P}/import?return_task_ids=true", content='[{"text": "示例文本1"}, {"text": "示例文本2"}]',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and list(r.json()) == ["import"] and isinstance(r.json()["import"], int)
    status = _wait_import(service, r.json()["import"])
    assert status["task_count"] == 2 and status["failed_count"] == 0 and len(status["task_ids"]) == 2
    assert status["id"] == r.json()["import"] and status["duration"] is not None and status["created_at"]
    r = client.get(f"/api/projects/{P}/imports/{status['id']}")  # without the trailing slash too
    assert r.status_code == 200


def test_thousand_items_exact_counts_annotations_and_failures(service: Service, tmp_path: Path) -> None:
    folder = service.root / "inputs" / "import-1000"
    make_many(folder, 3)
    items = [{"data": {"text": f"item {i}"}, "annotations": [{"result": []}] if i % 10 == 0 else [],
              "predictions": [{"result": []}, {"result": []}] if i % 100 == 0 else []} for i in range(994)]
    items += [{"image": str(folder / f"img_000{i}.png")} for i in range(3)]
    items += [{"image": str(folder / "missing.png")}, {"image": "/etc/passwd"}, {"data": {}}]
    status = _import(service, items, dataset="thousand")
    assert status["task_count"] == 997 and status["failed_count"] == 3
    assert status["annotation_count"] == 100 and status["prediction_count"] == 20
    assert "task_ids" not in status  # not asked for
    reasons = {f["index"]: f["reason"] for f in status["failures"]}
    assert "not found" in reasons[997] and "outside the allowed roots" in reasons[998] and "no data" in reasons[999]
    ds = _dataset(service, "thousand")
    assert ds["item_count"] == 997
    page = service.client.get(f"/v2/{P}/datasets/{ds['dataset_id']}/items?limit=100&offset=9").json()
    assert page["total"] == 997 and len(page["items"]) == 97
    image_items = [i for i in page["items"] if i["image"]]
    assert len(image_items) == 3 and all(len(i["digest"]) == 64 for i in image_items)


def test_uploaded_files_jsonl_and_csv(service: Service) -> None:
    files = {
        "items.jsonl": b'{"text": "a"}\n{"text": "b"}\n\n{"text": "c"}\n',
        "items.csv": "text,label\nfirst,x\nsecond,y\n".encode(),
        "items.json": json.dumps([{"text": "j"}]).encode(),
    }
    expected = {"items.jsonl": 3, "items.csv": 2, "items.json": 1}
    for name, content in files.items():
        r = service.client.post(f"/api/projects/{P}/import?return_task_ids=true&dataset=uploads",
                                files={"file": (name, content)})
        assert r.status_code == 201, r.text
        status = _wait_import(service, r.json()["import"])
        assert status["task_count"] == expected[name] and len(status["task_ids"]) == expected[name]


def test_folder_import_with_a_metadata_sheet(service: Service) -> None:
    folder = service.root / "inputs" / "import-folder"
    make_many(folder / "sub", 2)
    make_many(folder, 1)
    sheet = service.root / "inputs" / "sheet.csv"
    sheet.write_text("file_name,label,camera\nimg_0000.png,cat,A\n")
    status = _import(service, {"folder": str(folder), "recursive": True, "metadata_sheet": str(sheet)},
                     query="return_task_ids=true", dataset="from-folder")
    assert status["task_count"] == 3 and status["total"] is None
    ds = _dataset(service, "from-folder")
    items = service.client.get(f"/v2/{P}/datasets/{ds['dataset_id']}/items").json()["items"]
    by_image = {Path(i["image"]).relative_to(folder).as_posix(): i["data"] for i in items}
    assert set(by_image) == {"img_0000.png", "sub/img_0000.png", "sub/img_0001.png"}
    assert by_image["img_0000.png"]["label"] == "cat" and by_image["img_0000.png"]["camera"] == "A"
    flat = _import(service, {"folder": str(folder), "recursive": False}, dataset="flat")
    assert flat["task_count"] == 1


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"content": b'[{"text": "a"', "headers": {"content-type": "application/json"}}, 400, "invalid_request"),
    ({"json": [{"text": "a"}, "not an object"]}, 400, "invalid_request"),
    ({"json": []}, 400, "invalid_request"),
    ({"json": {"text": "a single object"}}, 400, "invalid_request"),
    ({"files": {"file": ("items.xml", b"<items/>")}}, 415, "unsupported_media_type"),
    ({"json": {"folder": "/etc"}}, 400, "path_not_allowed"),
    ({"json": {"folder": "relative/path"}}, 400, "path_not_allowed"),
    ({"content": b"[" + b'{"text": "x"},' * 200_000 + b'{"text": "y"}]',
      "headers": {"content-type": "application/json"}}, 413, "payload_too_large"),
], ids=["malformed", "not-object", "empty", "object", "unknown-format", "outside-roots", "relative", "too-large"])
def test_bad_input_is_a_clear_4xx_and_imports_nothing(service: Service, kwargs: dict, status: int,
                                                       code: str) -> None:
    before = service.accounts  # the datasets table is the record of what was imported
    counts = {d["name"]: d["item_count"] for d in service.client.get(f"/v2/{P}/datasets").json()["datasets"]}
    r = service.client.post(f"/api/projects/{P}/import?dataset=bad-input", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code
    after = {d["name"]: d["item_count"] for d in service.client.get(f"/v2/{P}/datasets").json()["datasets"]}
    assert after.get("bad-input", 0) == 0 and {k: v for k, v in after.items() if k != "bad-input"} == counts
    assert before is service.accounts


def test_repeated_query_parameters(service: Service) -> None:
    r = service.client.post(f"/api/projects/{P}/import?return_task_ids=true&return_task_ids=false",
                            json=[{"text": "a"}])
    assert r.status_code == 400 and "return_task_ids" in r.json()["error_msg"]
    r = service.client.post(f"/api/projects/{P}/import?return_task_ids=true&return_task_ids=true",
                            json=[{"text": "a"}])
    assert r.status_code == 201
    assert len(_wait_import(service, r.json()["import"])["task_ids"]) == 1


def test_unknown_import_and_other_projects(service: Service) -> None:
    assert service.client.get(f"/api/projects/{P}/imports/999999/").status_code == 404
    r = service.client.get(f"/api/projects/{P}/imports/abc/")
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_resource_id"
    import_id = service.client.post(f"/api/projects/{P}/import", json=[{"text": "a"}]).json()["import"]
    assert service.client.get(f"/api/projects/p1/imports/{import_id}/").status_code == 404


def test_versions_are_immutable_and_export_as_manifests(service: Service) -> None:
    _import(service, [{"text": f"v1-{i}"} for i in range(3)], dataset="versioned")
    ds = _dataset(service, "versioned")
    base = f"/v2/{P}/datasets/{ds['dataset_id']}"
    v1 = service.client.post(f"{base}/versions").json()
    assert v1["name"] == "V001" and v1["item_count"] == 3
    _import(service, [{"text": f"v2-{i}"} for i in range(2)], dataset="versioned")
    v2 = service.client.post(f"{base}/versions").json()
    assert v2["name"] == "V002" and v2["item_count"] == 5
    assert service.client.get(f"{base}/items?version_id={v1['version_id']}").json()["total"] == 3
    exported = service.client.get(f"{base}/versions/{v1['version_id']}/export").text.splitlines()
    assert len(exported) == 3 and all("item_id" in json.loads(line) for line in exported)
    assert service.client.post(f"{base}/versions?version_name=V001").status_code == 409
    assert [v["name"] for v in service.client.get(f"{base}/versions").json()["versions"]] == ["V001", "V002"]


def test_chaining_analyse_clean_augment_from_a_dataset_version(service: Service) -> None:
    from tests.support.dataset import make_dataset

    folder = service.root / "inputs" / "chain"
    make_dataset(folder)
    _import(service, {"folder": str(folder)}, dataset="chain")
    ds = _dataset(service, "chain")
    version = service.client.post(f"/v2/{P}/datasets/{ds['dataset_id']}/versions").json()

    def run(source: dict, template: dict) -> dict:
        r = service.client.post(f"/v2/{P}/processor-tasks", json={
            "name": template["id"], "data_source": source, "template": template})
        assert r.status_code == 200, r.text
        return service.wait_status(r.json()["task_id"], 2, allowed={0, 1}, project=P)

    analysis = run({"type": "DATASET", "source": ds["dataset_id"], "version_id": version["version_id"]},
                   {"id": "sys_data_analyse"})
    assert analysis["version_id"] == version["version_id"] and analysis["version_name"] == "V001"
    assert analysis["result"]["item_count"] == 16  # the folder's 15 images and the truncated one
    listed = service.client.get(
        f"/v2/{P}/processor-tasks?source_type=DATASET&source={ds['dataset_id']}"
        f"&version_id={version['version_id']}&query_current=true").json()
    assert [t["task_id"] for t in listed["tasks"]] == [analysis["task_id"]]

    cleaning = run({"type": "TASK", "source": analysis["task_id"]},
                   {"id": "sys_data_cleaning", "operator_params": [{"id": "data_cleaning"}]})
    kept = cleaning["result"]["cleaning"]["kept_count"]
    assert kept == 16 - 2  # the truncated file and one exact duplicate
    augmented = run({"type": "TASK", "source": cleaning["task_id"]},
                    {"id": "sys_data_augmentation",
                     "operator_params": [{"id": "data_augmentation", "params": {"copies": 2}}]})
    assert augmented["result"]["augmentation"]["outputs"] == 2 * kept
    r = service.client.post(f"/v2/{P}/processor-tasks", json={
        "name": "x", "data_source": {"type": "DATASET", "source": ds["dataset_id"], "version_id": "nope"},
        "template": {"id": "sys_data_analyse"}})
    assert r.status_code == 404
