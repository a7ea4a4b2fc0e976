"""What a stop asks Ray: the stop itself, and the job's state only when the job had already ended.

The real app and database in-process; Ray's side is its job client seen through the real ``JobLauncher``,
standing in for a cluster whose job is running, or has ended without its runner recording an outcome.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from jobs.launcher import JobLauncher
from jobs.status import TaskStatus
from jobs.store import Store
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.settings import Settings
from tests.serve_app.test_ray_unreachable import _seed_task
from tests.support.clock import Clock
from tests.support.images import make_many


class JobClient:
    """A cluster with one job in ``status``; records every question."""

    status = "RUNNING"
    calls: list[tuple[str, str]] = []

    def __init__(self, *args, **kwargs) -> None:
        pass

    def stop_job(self, job_id: str) -> bool:
        type(self).calls.append(("stop_job", job_id))
        return self.status in ("PENDING", "RUNNING")  # Ray's answer: whether there was a job to stop

    def get_job_info(self, job_id: str):
        type(self).calls.append(("get_job_info", job_id))
        return SimpleNamespace(status=SimpleNamespace(value=self.status), message="exited with code 137")


@pytest.fixture
def world(tmp_path: Path):
    JobClient.calls = []
    settings = Settings(data_dir=tmp_path / "data", allowed_roots=[str(tmp_path)], auth_enabled=False).resolved()
    clock = Clock(1_700_000_000_000)  # still: the runner's last progress stays fresh, whatever the host's load
    store = Store(settings.db_path, clock=clock)
    service = build_service(settings, store=store, launcher=JobLauncher("http://ray", client_factory=JobClient),
                            clock=clock)
    folder = tmp_path / "in"
    make_many(folder, 2)
    return TestClient(create_app(service, Accounts(settings.db_path)), raise_server_exceptions=False), store, folder


def test_stopping_a_running_job_asks_ray_only_to_stop_it(world) -> None:
    client, store, folder = world
    JobClient.status = "RUNNING"
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)  # its runner reported just now
    r = client.post(f"/v2/p1/processor-tasks/{task_id}/stop")
    assert r.status_code == 200, r.text
    run_id = store.get_task(task_id).current_run
    # The runner, told by Ray's SIGTERM and by the flag, records status 4 itself.
    assert JobClient.calls == [("stop_job", run_id)]
    assert r.json()["status"] == TaskStatus.RUNNING and store.get_task(task_id).stop_requested


def test_stopping_a_job_that_already_ended_settles_the_task_at_once(world) -> None:
    client, store, folder = world
    JobClient.status = "FAILED"  # the driver was killed before it could record anything
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)
    r = client.post(f"/v2/p1/processor-tasks/{task_id}/stop")
    assert r.status_code == 200, r.text
    run_id = store.get_task(task_id).current_run
    assert JobClient.calls == [("stop_job", run_id), ("get_job_info", run_id)]
    assert r.json()["status"] == TaskStatus.STOPPED == store.get_task(task_id).status
