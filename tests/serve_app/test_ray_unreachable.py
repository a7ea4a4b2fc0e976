"""When Ray cannot be reached or misbehaves: 503 / 500 with the error shape, and nothing changes; creates and
resumes, which only queue a run, are accepted and wait in the queue.

These run the real app and a real database in-process; the Ray side is an address
where nothing listens (a real connection failure) or a client that raises.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from jobs.launcher import JobLauncher, new_run_id
from jobs.status import TaskStatus
from jobs.store import Store
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.settings import Settings
from tests.conftest import free_port
from tests.support.hung import hung_listener
from tests.support.images import make_many


def _app(tmp_path: Path, launcher: JobLauncher) -> tuple[TestClient, Store, Path]:
    settings = Settings(data_dir=tmp_path / "data", allowed_roots=[str(tmp_path)], auth_enabled=False).resolved()
    store = Store(settings.db_path)
    service = build_service(settings, store=store, launcher=launcher)
    app = create_app(service, Accounts(settings.db_path))
    client = TestClient(app, raise_server_exceptions=False)
    folder = tmp_path / "in"
    make_many(folder, 2)
    return client, store, folder


def _seed_task(store: Store, folder: Path, status: TaskStatus, task_id: str = "seededTask0123456789") -> str:
    run_id = new_run_id(task_id, 1)
    store.insert_task({
        "task_id": task_id, "project_id": "p1", "workspace_id": "0", "name": "seeded", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(folder), "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {"id": "sys_data_analyse"},
        "work_path": {}, "input_root": str(folder), "output_dir": str(folder / "out"),
        "execution": {"chunk_size": 8}, "current_run": run_id,
    })
    store.mark_submitted(run_id)
    if status != TaskStatus.INITIALIZED:
        store.claim_run(task_id, run_id)
    if status.is_terminal():
        store.finish_run(task_id, run_id, status)
    return task_id


@pytest.fixture
def dead_ray(tmp_path: Path):
    return _app(tmp_path, JobLauncher(f"http://127.0.0.1:{free_port()}"))


def test_create_is_queued_without_asking_ray_and_a_failed_submission_loses_nothing(dead_ray) -> None:
    client, store, folder = dead_ray
    r = client.post("/v2/p1/processor-tasks", json={
        "name": "t", "data_source": {"source": str(folder)}, "template": {"id": "sys_data_analyse"}})
    assert r.status_code == 200, r.text
    created = client.get(f"/v2/p1/processor-tasks/{r.json()['task_id']}").json()
    assert (created["status"], created["queue_position"]) == (0, 1)
    assert client.app.state.service.dispatcher.dispatch() == 0  # Ray is unreachable
    task = client.get(f"/v2/p1/processor-tasks/{created['task_id']}").json()
    assert (task["status"], task["queue_position"], len(task["runs"])) == (0, 1, 1)
    # Ray may have taken the lost submission: the run waits again under a fresh id, never the same one twice.
    assert task["ray_job_id"] != created["ray_job_id"] and task["ray_job_ids"] == [task["ray_job_id"]]


def test_stop_is_503_and_leaves_the_task_running(dead_ray) -> None:
    client, store, folder = dead_ray
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)
    r = client.post(f"/v2/p1/processor-tasks/{task_id}/stop")
    assert r.status_code == 503 and r.json()["error_code"] == "ray_unavailable"
    task = client.get(f"/v2/p1/processor-tasks/{task_id}").json()  # reads still work without Ray
    assert task["status"] == 1 and task["stop_requested"] is False


def test_resume_is_queued_without_asking_ray(dead_ray) -> None:
    client, store, folder = dead_ray
    task_id = _seed_task(store, folder, TaskStatus.STOPPED)
    r = client.post(f"/v2/p1/processor-tasks/{task_id}/resume")
    assert r.status_code == 200, r.text
    task = client.get(f"/v2/p1/processor-tasks/{task_id}").json()
    assert (task["status"], task["queue_position"], len(task["ray_job_ids"])) == (0, 1, 2)


def test_id_rules_come_before_any_lookup_or_ray_call(dead_ray) -> None:
    client, _, _ = dead_ray
    r = client.post("/v2/p1/processor-tasks/job%201/stop")
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_resource_id"


class _BrokenClient:
    """Stands in for Ray's job client when Ray answers something nobody expected."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def stop_job(self, job_id: str) -> bool:
        raise ValueError("unexpected answer from the Jobs API")

    def get_job_info(self, job_id: str):
        raise ValueError("unexpected answer from the Jobs API")

    def list_jobs(self):
        raise ValueError("unexpected answer from the Jobs API")


def test_unexpected_ray_error_is_a_500_with_a_stable_code_and_no_traceback(tmp_path: Path) -> None:
    client, store, folder = _app(tmp_path, JobLauncher("http://ray", client_factory=_BrokenClient))
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)
    r = client.post(f"/v2/p1/processor-tasks/{task_id}/stop")
    assert r.status_code == 500
    assert r.json()["error_code"] == "internal_error"
    assert "Traceback" not in r.text and "File \"" not in r.text


def test_an_unhandled_exception_is_a_500_in_the_error_shape(tmp_path: Path, monkeypatch) -> None:
    client, store, folder = _app(tmp_path, JobLauncher("http://ray", client_factory=_BrokenClient))

    def explode(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(store, "list_tasks", explode)
    r = client.get("/v2/p1/processor-tasks")
    assert r.status_code == 500
    assert r.json()["error_code"] == "internal_error" and "reference" in r.json()["error_msg"]
    assert "KeyError" not in r.text


class _EndedJobClient:
    """Ray's job client for a cluster where every job has ended in failure; counts the questions."""

    asked = 0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def get_job_info(self, job_id: str):
        type(self).asked += 1
        return SimpleNamespace(status=SimpleNamespace(value="FAILED"), message="exited with code 137")


def test_reads_of_a_reporting_task_do_not_ask_ray_until_its_progress_goes_stale(tmp_path: Path) -> None:
    client, store, folder = _app(tmp_path, JobLauncher("http://ray", client_factory=_EndedJobClient))
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)
    run_id = store.get_task(task_id).current_run
    _EndedJobClient.asked = 0
    store.record_progress(task_id, run_id, total=2, processed=1, failed=0, computed_in_run=1)
    for _ in range(5):
        assert client.get(f"/v2/p1/processor-tasks/{task_id}").json()["status"] == 1
    assert _EndedJobClient.asked == 0  # the runner is reporting: Ray was not asked
    with sqlite3.connect(tmp_path / "data" / "rayproc.db") as conn:  # the runner went quiet two seconds ago
        conn.execute("UPDATE tasks SET update_time = update_time - 2000 WHERE task_id = ?", (task_id,))
    task = client.get(f"/v2/p1/processor-tasks/{task_id}").json()
    assert _EndedJobClient.asked == 1
    # Settled as job_died, which is the infrastructure's fault: the read already shows the retry queued.
    assert task["status"] == 0 and task["queue_position"] == 1
    assert task["runs"][0]["outcome"] == "failed" and "137" in task["runs"][0]["reason"]
    assert task["runs"][1]["attempt"] == 2


def test_a_work_path_that_cannot_be_written_is_a_400_before_anything_exists(dead_ray, tmp_path: Path) -> None:
    client, _, folder = dead_ray
    (tmp_path / "a-file").write_text("not a folder")
    r = client.post("/v2/p1/processor-tasks", json={
        "name": "t", "data_source": {"source": str(folder)}, "template": {"id": "sys_data_analyse"},
        "work_path": {"type": "OBS", "path": str(tmp_path / "a-file" / "out")}})
    # 400, not the 503 an unreachable Ray would give: the work path is tried before Ray is asked.
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "invalid_parameter" and "work_path.path" in r.json()["error_msg"]
    assert client.get("/v2/p1/processor-tasks").json()["count"] == 0


class _KilledDriverClient:
    """Ray's job client for a job whose driver was killed: Ray's message goes on with the driver's last logs."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def get_job_info(self, job_id: str):
        return SimpleNamespace(status=SimpleNamespace(value="FAILED"), message=(
            "Job entrypoint command failed with exit code -9, last available logs (truncated to 20,000 chars):\n"
            "exec /opt/venv/bin/python -m jobs.runner --db /srv/rayproc/rayproc.db --task-id t --run-id r"))


def test_a_killed_drivers_message_keeps_its_exit_code_and_no_command_line(tmp_path: Path) -> None:
    client, store, folder = _app(tmp_path, JobLauncher("http://ray", client_factory=_KilledDriverClient))
    task_id = _seed_task(store, folder, TaskStatus.INITIALIZED)
    task = client.get(f"/v2/p1/processor-tasks/{task_id}").json()
    # Settled as job_died (and its retry queued): the stored reason keeps the exit code, nothing else.
    reason = task["runs"][0]["reason"]
    assert task["runs"][0]["outcome"] == "failed" and "exited with code -9" in reason
    for leak in ("jobs.runner", "rayproc.db", "/opt/venv", "--db", "last available logs"):
        assert leak not in reason, reason


@pytest.fixture
def hung_ray(tmp_path: Path):
    """The app over a Jobs API that accepts connections and never answers (a paused dashboard)."""
    with hung_listener() as url:
        yield _app(tmp_path, JobLauncher(url, call_timeout_seconds=1.0))


def _timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_while_ray_hangs_reads_answer_within_a_second_and_writes_are_503(hung_ray) -> None:
    client, store, folder = hung_ray
    running = _seed_task(store, folder, TaskStatus.RUNNING, "runningTask012345678")
    waiting = _seed_task(store, folder, TaskStatus.INITIALIZED, "waitingTask012345678")
    with sqlite3.connect(store.path) as conn:  # the runner went quiet: a read of it asks Ray
        conn.execute("UPDATE tasks SET update_time = update_time - 5000 WHERE task_id = ?", (running,))
    base = "/v2/p1/processor-tasks"
    for _ in range(3):
        for path in (f"{base}/{running}", f"{base}/{waiting}", base, "/healthz"):
            r, took = _timed(lambda: client.get(path))
            assert r.status_code == 200 and took < 1.0, (path, took, r.text)
    assert client.get("/healthz").json() == {"status": "ok", "ray": "unreachable"}

    r, took = _timed(lambda: client.post(base, json={
        "name": "t", "data_source": {"source": str(folder)}, "template": {"id": "sys_data_analyse"}}))
    assert r.status_code == 503 and r.json()["error_code"] == "ray_unavailable" and took < 5.0, (took, r.text)
    r = client.post(f"{base}/{running}/stop")
    assert r.status_code == 503 and r.json()["error_code"] == "ray_unavailable"
    # Nothing recorded was lost or changed, and the refused create left nothing behind.
    listed = client.get(base).json()
    assert listed["count"] == 2
    assert {t["task_id"]: t["status"] for t in listed["tasks"]} == {running: 1, waiting: 0}
