"""label-studio-sdk, unchanged, against the live service: an import and the calls around it."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from tests.conftest import Service

pytestmark = pytest.mark.ray

P, STAGED, OTHER = "ls-sdk", "ls-staged", "ls-other"


@pytest.fixture(scope="module")
def tokens(service: Service) -> dict[str, str]:
    acc = service.accounts
    for project in (P, STAGED, OTHER):
        acc.create_project(project, name=f"{project} title")
    for user in ("ls-member", "ls-outsider"):
        acc.create_user(user)
    acc.set_role(P, "ls-member", "member")
    acc.set_role(STAGED, "ls-member", "member")
    acc.set_role(OTHER, "ls-outsider", "member")
    return {"member": acc.issue_token("ls-member")[1], "outsider": acc.issue_token("ls-outsider")[1]}


def _sdk(service: Service, token: str) -> LabelStudio:
    return LabelStudio(base_url=service.url, api_key=token)


def _wait(ls: LabelStudio, project: str, import_id: int, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        status = ls.tasks.create_many_status(id=project, import_pk=import_id)
        assert status.status in ("created", "in_progress", "completed"), status
        if status.status == "completed":
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


ITEMS = [{"data": {"text": f"item {i}", "label": "cat" if i % 2 else "dog"},
          "annotations": [{"result": []}] if i == 0 else []} for i in range(7)]


def test_import_then_projects_and_tasks_through_the_sdk(service: Service, tokens: dict) -> None:
    ls = _sdk(service, tokens["member"])
    before = time.time()
    created = ls.projects.import_tasks(id=P, request=ITEMS, return_task_ids=True, preannotated_from_fields=["label"])
    status = _wait(ls, P, created.import_)
    assert status.task_count == 7 and status.annotation_count == 1 and status.prediction_count == 7
    assert isinstance(status.duration, int) and 0 <= status.duration <= time.time() - before + 1
    assert isinstance(status.updated_at, datetime) and status.updated_at >= status.created_at
    assert status.commit_to_project is True and status.preannotated_from_fields == ["label"]
    task_ids = status.task_ids
    assert len(task_ids) == 7

    projects = {p.id: p for p in ls.projects.list()}
    assert set(projects) == {P, STAGED}  # only the member's projects
    assert projects[P].title == f"{P} title" and projects[P].task_number == 7
    assert projects[P].total_annotations_number == 1 and projects[P].total_predictions_number == 7
    project = ls.projects.get(id=P)
    assert project.task_number == 7 and project.num_tasks_with_annotations == 1

    tasks = list(ls.tasks.list(project=P, page_size=3))  # three pages, then the SDK's 404 stop
    assert [t.id for t in tasks] == task_ids
    assert [t.data["text"] for t in tasks] == [f"item {i}" for i in range(7)]
    prediction = tasks[1].predictions[0]
    assert prediction.result[0]["value"] == {"choices": ["cat"]} and prediction.result[0]["from_name"] == "label"
    assert prediction.model_version == "preannotated" and prediction.score == 1.0 and tasks[1].project == P

    one = ls.tasks.get(id=str(task_ids[0]))
    assert one.id == task_ids[0] and one.total_annotations == 1 and one.annotations == [{"result": []}]
    assert one.data == {"text": "item 0", "label": "dog"}


def test_pages_follow_label_studio(service: Service, tokens: dict) -> None:
    client = service.client_for(tokens["member"])
    _wait(_sdk(service, tokens["member"]), P,
          _sdk(service, tokens["member"]).projects.import_tasks(id=P, request=[{"text": "paged"}]).import_)
    total = client.get("/api/tasks/", params={"project": P}).json()["total"]
    last = -(-total // 2)
    page = client.get("/api/tasks/", params={"project": P, "page": last, "page_size": 2}).json()
    assert len(page["tasks"]) == total - 2 * (last - 1) and set(page) == {
        "tasks", "total", "total_annotations", "total_predictions"}
    assert "annotations" not in page["tasks"][0]  # fields=task_only, Label Studio's default
    r = client.get("/api/tasks/", params={"project": P, "page": last + 1, "page_size": 2})
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"
    projects = client.get("/api/projects/", params={"page_size": 1}).json()
    assert projects["count"] == 2 and projects["previous"] is None and "page=2" in projects["next"]
    assert client.get("/api/projects/", params={"page": 3, "page_size": 1}).status_code == 404
    for bad in ({"page": 0}, {"page_size": 1001}, {"fields": "everything"}):
        r = client.get("/api/tasks/", params={"project": P, **bad})
        assert r.status_code == 400 and r.json()["error_code"] == "invalid_request", r.text
    r = client.get("/api/tasks/")
    assert r.status_code == 400 and "project" in r.json()["error_msg"]
    r = client.get("/api/tasks/abc/")
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_resource_id"


def test_staged_import_is_committed_by_reimport(service: Service, tokens: dict) -> None:
    ls = _sdk(service, tokens["member"])
    client = service.client_for(tokens["member"])
    created = ls.projects.import_tasks(id=STAGED, request=[{"text": f"s{i}", "label": "x"} for i in range(4)],
                                       commit_to_project=False, return_task_ids=True,
                                       preannotated_from_fields=["label"])
    status = _wait(ls, STAGED, created.import_)
    assert status.commit_to_project is False and status.task_count == 4 and status.prediction_count == 0
    assert status.file_upload_ids == [created.import_]
    assert ls.projects.get(id=STAGED).task_number == 0  # staged: not the project's yet
    assert list(ls.tasks.list(project=STAGED)) == []
    datasets = client.get(f"/v2/{STAGED}/datasets").json()["datasets"]
    assert [d["item_count"] for d in datasets] == [0]

    r = client.post(f"/api/projects/{STAGED}/reimport", json={"file_upload_ids": status.file_upload_ids, "x": 1})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_request"
    r = client.post(f"/api/projects/{STAGED}/reimport",  # the body Label Studio's import dialog sends
                    json={"file_upload_ids": status.file_upload_ids, "files_as_tasks_list": False})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["task_count"] == 4 and body["prediction_count"] == 4 and isinstance(body["duration"], int)
    tasks = list(ls.tasks.list(project=STAGED))
    assert [t.data["text"] for t in tasks] == ["s0", "s1", "s2", "s3"]
    after = ls.tasks.create_many_status(id=STAGED, import_pk=created.import_)
    assert after.task_ids == [t.id for t in tasks] and after.prediction_count == 4
    assert after.updated_at > status.updated_at

    again = client.post(f"/api/projects/{STAGED}/reimport", json={"file_upload_ids": status.file_upload_ids})
    assert again.status_code == 400 and "already committed" in again.json()["error_msg"]
    committed = ls.projects.import_tasks(id=STAGED, request=[{"text": "direct"}]).import_
    _wait(ls, STAGED, committed)
    r = client.post(f"/api/projects/{STAGED}/reimport", json={"file_upload_ids": [committed]})
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_state"
    assert client.post(f"/api/projects/{STAGED}/reimport", json={"file_upload_ids": [999999]}).status_code == 404
    assert client.post(f"/api/projects/{STAGED}/reimport", json={"file_upload_ids": []}).status_code == 400
    assert ls.projects.get(id=STAGED).task_number == 5


def test_preannotation_of_a_missing_field_fails_that_item_only(service: Service, tokens: dict) -> None:
    ls = _sdk(service, tokens["member"])
    created = ls.projects.import_tasks(id=P, request=[{"text": "a", "label": "x"}, {"text": "no label"}],
                                       preannotated_from_fields="label")
    assert _wait(ls, P, created.import_).task_count == 1
    raw = service.client_for(tokens["member"]).get(f"/api/projects/{P}/imports/{created.import_}/").json()
    assert raw["failed_count"] == 1 and "preannotated field 'label'" in raw["failures"][0]["reason"]


def test_other_projects_stay_invisible(service: Service, tokens: dict) -> None:
    member = _sdk(service, tokens["member"])
    task_id = next(iter(member.tasks.list(project=P))).id
    outsider = _sdk(service, tokens["outsider"])
    assert [p.id for p in outsider.projects.list()] == [OTHER]

    def refused(call) -> dict:
        with pytest.raises(ApiError) as info:
            call()
        assert info.value.status_code == 404
        return info.value.body

    # Someone else's project answers exactly as one that does not exist.
    for project in (P, "ls-nope"):
        assert refused(lambda: outsider.projects.get(id=project))["error_msg"] == f"project {project!r} not found"
        assert refused(lambda: outsider.tasks.list(project=project))["error_msg"] == f"project {project!r} not found"
    body = refused(lambda: outsider.tasks.get(id=str(task_id)))
    assert body == refused(lambda: outsider.tasks.get(id="987654321")) | {"error_msg": f"task {task_id} not found"}
    assert P not in str(body)
    r = httpx.get(f"{service.url}/api/tasks/{task_id}/", headers={"Authorization": "Token nope"})
    assert r.status_code == 401
