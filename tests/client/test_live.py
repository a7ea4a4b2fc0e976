"""The client against the real service: HTTP -> Serve -> Ray job -> results, on the session's local Ray cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayproc_client import (
    AsyncClient,
    Client,
    Conflict,
    ErrorEntry,
    Forbidden,
    InvalidParameter,
    InvalidResourceId,
    InvalidState,
    NotFound,
    PathNotAllowed,
    TaskFailedError,
    TaskStatus,
    Unauthorized,
)
from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

PROJECT = "client-live"
LISTING = "client-listing"
WAIT = {"timeout_seconds": 120.0, "check_frequency": 2.0}


def _admin_token(service: Service) -> str:
    return service.client.headers["Authorization"].removeprefix("Token ")


def _images(service: Service, name: str, n: int) -> Path:
    folder = service.root / "inputs" / name
    folder.mkdir(parents=True)
    make_many(folder, n)
    return folder


@pytest.fixture(scope="module")
def rp(service: Service) -> Iterator[Client]:
    with Client(service.url, _admin_token(service), timeout=60) as client:
        assert client.create_project(PROJECT, name="client tests").project_id == PROJECT
        yield client


@pytest.fixture(scope="module")
def completed(service: Service, rp: Client):
    """An analysis task over 12 images and one file that is not an image, run to completion."""
    folder = _images(service, "client-analysis", 12)
    (folder / "broken.png").write_bytes(b"this is not an image")
    task = rp.create_task(PROJECT, name="client-analysis", source=folder, chunk_size=4,
                          operator_params={"image_features": {"histogram_bins": 5}})
    assert task.status in (TaskStatus.INITIALIZED, TaskStatus.RUNNING, TaskStatus.COMPLETED)
    return task.wait_till_done(**WAIT)


def test_an_analysis_task_runs_to_completion(completed) -> None:
    task = completed
    assert task.status == TaskStatus.COMPLETED and task.status_name == "completed"
    assert task.completion_percentage == 100.0
    assert (task.created_data_rows, task.failed_data_rows, task.info.total_count) == (12, 1, 13)
    assert [(e.item, e.code) for e in task.errors] == [("broken.png", "not_an_image")]
    hist = task.result["features"]["brightness"]["histogram"]
    assert sum(hist["counts"]) == 12 and len(hist["counts"]) == 5
    # One run, or more when an infrastructure failure was healed by a retry (the runs say why).
    assert task.info.ray_job_ids[-1] == task.info.ray_job_id
    runs = task.info.runs
    assert [r.run_id for r in runs] == task.info.ray_job_ids
    assert runs[-1].outcome == "completed" and all(r.outcome == "failed" for r in runs[:-1]), runs


def test_get_and_refresh_read_the_same_task(rp: Client, completed) -> None:
    again = rp.get_task(PROJECT, completed.uid)
    assert again.info == completed.info
    assert again.refresh().info.task_id == completed.uid
    assert rp.get_task(PROJECT, completed.uid, return_result=False).result is None


def test_a_finished_task_cannot_be_stopped_or_resumed(rp: Client, completed) -> None:
    with pytest.raises(InvalidState, match="already completed") as stopped:
        rp.stop_job(PROJECT, completed.uid)
    assert (stopped.value.status_code, stopped.value.error_code) == (400, "invalid_state")
    with pytest.raises(InvalidState, match="only a stopped or failed task can be resumed") as resumed:
        rp.resume_job(PROJECT, completed.uid)
    assert resumed.value.status_code == 400


@pytest.mark.parametrize("action", ["stop_job", "resume_job"])
def test_stop_and_resume_errors_for_ids(rp: Client, action: str) -> None:
    call = getattr(rp, action)
    with pytest.raises(NotFound) as missing:
        call(PROJECT, "no-such-task")
    assert missing.value.status_code == 404
    with pytest.raises(InvalidResourceId, match="Invalid task ID format"):
        call(PROJECT, "bad id")
    with pytest.raises(InvalidResourceId, match="task ID cannot be empty"):
        call(PROJECT, "")


def test_stop_wait_resume_wait_delete(service: Service, rp: Client) -> None:
    folder = _images(service, "client-stop-resume", 8)
    slow = [{"id": "image_features", "params": {}}, {"id": "work_probe", "params": {"delay_seconds": 0.5}}]
    task = rp.create_task(PROJECT, name="client-stop-resume", source=folder, operator_params=slow, chunk_size=8)
    with pytest.raises(Conflict):
        rp.delete_task(PROJECT, task.uid)  # still active

    rp.stop_job(PROJECT, task.uid)
    assert task.wait_till_done(**WAIT).status == TaskStatus.STOPPED  # a stop returns, it does not raise

    resumed = rp.resume_job(PROJECT, task.uid)
    assert resumed.status in (TaskStatus.INITIALIZED, TaskStatus.RUNNING)
    task.wait_till_done(**WAIT)
    assert task.status == TaskStatus.COMPLETED and task.created_data_rows == 8
    assert len(task.info.ray_job_ids) == 2

    rp.delete_task(PROJECT, task.uid)
    with pytest.raises(NotFound):
        rp.get_task(PROJECT, task.uid)


def test_a_failed_task_raises_task_failed(service: Service, rp: Client) -> None:
    empty = service.root / "inputs" / "client-empty"
    empty.mkdir(parents=True)
    task = rp.create_task(PROJECT, name="client-empty", source=empty)
    with pytest.raises(TaskFailedError) as caught:
        task.wait_till_done(**WAIT)
    assert caught.value.error_type == "no_items" and task.status == TaskStatus.FAILED
    assert task.errors[0] == ErrorEntry(None, "no_items", task.info.error_msg or "")


def test_bad_creates_map_to_their_errors(service: Service, rp: Client) -> None:
    with pytest.raises(InvalidParameter, match="does not exist"):
        rp.create_task(PROJECT, name="x", source=service.root / "inputs" / "missing")
    with pytest.raises(PathNotAllowed):
        rp.create_task(PROJECT, name="x", source="/etc")
    with pytest.raises(InvalidParameter, match="unknown"):
        rp.create_task(PROJECT, name="x", source=service.root, template="sys_no_such_template")
    with pytest.raises(NotFound):
        rp.create_task("no-such-project", name="x", source=service.root)


def test_list_walks_every_page(service: Service, rp: Client) -> None:
    rp.create_project(LISTING)
    folder = _images(service, "client-listing", 2)
    names = [f"list-{i}" for i in range(5)]
    created = [rp.create_task(LISTING, name=name, source=folder) for name in names]
    for task in created:
        task.wait_till_done(**WAIT)

    walked = list(rp.list_tasks(LISTING, page_size=2, sort_by="name", order="asc", return_result=False))
    assert [t.name for t in walked] == names
    assert [t.uid for t in walked] == [t.uid for t in created]
    assert all(t.status == TaskStatus.COMPLETED and t.result is None for t in walked)
    assert [t.name for t in rp.list_tasks(LISTING, task_name="LIST-3")] == ["list-3"]
    assert list(rp.list_tasks(LISTING, status=TaskStatus.FAILED)) == []

    async def walk_async() -> list[str]:
        async with AsyncClient(service.url, _admin_token(service)) as arp:
            return [t.name async for t in arp.list_tasks(LISTING, page_size=3, sort_by="name")]

    assert asyncio.run(walk_async()) == names[::-1]


def test_templates_and_items(rp: Client) -> None:
    templates = {t.template_id: t for t in rp.templates(PROJECT)}
    assert len(templates) == 5
    assert "image_features" in {op.id for op in templates["sys_data_analyse"].operators}
    assert {i.template_id for i in rp.template_items(PROJECT)} == set(templates)


def test_accounts_roles_and_tokens(service: Service, rp: Client, completed) -> None:
    assert rp.whoami().is_admin and PROJECT in {p.project_id for p in rp.projects()}
    assert rp.health().status == "ok"
    assert rp.cluster().alive_nodes >= 1

    assert rp.create_user("client-viewer").name == "client-viewer"
    issued = rp.create_token("client-viewer", name="tests")
    assert rp.set_member(PROJECT, "client-viewer", "viewer").role == "viewer"
    assert "client-viewer" in {u.name for u in rp.users()}
    assert issued.token_id in {t.token_id for t in rp.tokens()}
    with pytest.raises(Conflict):
        rp.create_project(PROJECT)

    with Client(service.url, issued.token) as viewer:
        me = viewer.whoami()
        assert (me.name, me.is_admin, [(p.project_id, p.role) for p in me.projects]) == (
            "client-viewer", False, [(PROJECT, "viewer")])
        assert completed.uid in {t.uid for t in viewer.list_tasks(PROJECT)}
        with pytest.raises(Forbidden) as forbidden:
            viewer.create_task(PROJECT, name="x", source=service.root)
        assert forbidden.value.status_code == 403
        with pytest.raises(Forbidden):
            viewer.cluster()
        rp.remove_member(PROJECT, "client-viewer")
        with pytest.raises(NotFound):
            viewer.get_task(PROJECT, completed.uid)
        rp.revoke_token(issued.token_id)
        with pytest.raises(Unauthorized) as unauthorized:
            viewer.whoami()
        assert unauthorized.value.status_code == 401
