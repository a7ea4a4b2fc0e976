"""The admission queue against the real local Ray cluster: a small limit, more creates than slots, priorities, a
stop and a delete of queued tasks and a service restart with a full queue; never more running than the limit.

The service here is built in-process on its own database (as the in-process tests build theirs) with a limit of
two, and submits real Ray jobs to the suite's cluster; the restart builds a second service on the same database.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jobs.store import Store
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.service import TaskService
from serve_app.settings import Settings
from tests.conftest import PLUGINS, Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

LIMIT = 2
BASE = "/v2/p1/processor-tasks"


def _started(settings: Settings) -> tuple[TaskService, TestClient]:
    service = build_service(settings)
    service.reconciler.start()
    service.dispatcher.start()
    return service, TestClient(create_app(service, Accounts(settings.db_path)), raise_server_exceptions=False)


def _stopped(service: TaskService) -> None:
    service.dispatcher.close()
    service.reconciler.close()


def _template(log: Path) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}},
        {"id": "work_probe", "params": {"delay_seconds": 0.1, "log_path": str(log)}},
    ]}


def test_a_burst_queues_starts_by_priority_within_the_limit_and_survives_a_restart(
        service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 3)
    data_dir = service.root / "queue-data"
    settings = Settings(
        data_dir=data_dir, dashboard_url=service.dashboard_url, allowed_roots=[str(service.root)],
        operator_plugins=PLUGINS, auth_enabled=False, default_chunk_size=8, max_running_tasks=LIMIT,
        dispatch_interval_seconds=0.1, reconcile_interval_seconds=0.2).resolved()
    store = Store(settings.db_path)
    first, client = _started(settings)

    def create(name: str, priority: int = 0) -> str:
        t0 = time.monotonic()
        r = client.post(BASE, json={"name": name, "data_source": {"type": "OBS", "source": str(folder)},
                                    "template": _template(tmp_path / f"{name}.log"), "priority": priority})
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < 1.0, "a create must not wait for Ray"
        return r.json()["task_id"]

    def get(task_id: str) -> dict:
        r = client.get(f"{BASE}/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def submitted(task_id: str) -> bool:
        return store.run_phase(get(task_id)["ray_job_id"])[0] == "submitted"

    try:
        ids = {name: create(name) for name in ("a", "b")}
        _until(lambda: all(submitted(ids[n]) for n in ("a", "b")), "the first two to be handed to Ray")
        # The slots are full: these wait, the highest priority first, then in the order they came.
        for name, priority in [("c", 0), ("d", 0), ("e", 5), ("f", 0), ("g", 9), ("h", 0)]:
            ids[name] = create(name, priority)
        queued = {n: get(ids[n]) for n in "cdefgh"}
        assert all(t["status"] == 0 for t in queued.values())
        assert [n for n, _ in sorted(queued.items(), key=lambda kv: kv[1]["queue_position"])] == list("gecdfh")
        assert get(ids["a"])["queue_position"] is None

        r = client.post(f"{BASE}/{ids['d']}/stop")  # a queued task stops at once, never having run
        assert r.status_code == 200 and r.json()["status"] == 4 and r.json()["queue_position"] is None
        assert client.delete(f"{BASE}/{ids['f']}").status_code == 204  # and a queued task may go
        assert client.get(f"{BASE}/{ids['f']}").status_code == 404
        assert [get(ids[n])["queue_position"] for n in "gech"] == [1, 2, 3, 4]

        _stopped(first)  # the service restarts with a full queue...
        second, client = _started(settings)  # ...as a new service on the same database
        try:
            expected = [ids[n] for n in "abcegh"]
            peak = 0
            deadline = time.monotonic() + 90
            while True:
                running = store.running_counts()[0]
                listed = client.get(BASE, params={"limit": 50}).json()["tasks"]
                assert running <= LIMIT and sum(t["status"] == 1 for t in listed) <= LIMIT
                peak = max(peak, running)
                if all(t["status"] == 2 for t in listed if t["task_id"] in expected):
                    break
                assert not any(t["status"] == 3 for t in listed), [t.get("error_msg") for t in listed]
                assert time.monotonic() < deadline, "the queue did not drain"
                time.sleep(0.05)
        finally:
            _stopped(second)
    finally:
        _stopped(first)

    assert peak == LIMIT
    done = {n: get(ids[n]) for n in "abcegh"}
    # Claimed in queue order: each run's submit time is when a dispatcher took it from the queue.
    claimed = {n: store.get_task(ids[n], with_runs=True).runs[-1]["submit_time"] for n in "gech"}
    assert sorted(claimed, key=claimed.get) == list("gech")
    reference = (Path(done["a"]["work_path"]["output_path"]) / "features.jsonl").read_text()
    assert len(reference.splitlines()) == 3
    for name, task in done.items():
        assert len(task["ray_job_ids"]) == 1 and task["runs"][0]["outcome"] == "completed"
        out = Path(task["work_path"]["output_path"])
        rows = [json.loads(line)["item"] for line in (out / "features.jsonl").read_text().splitlines()]
        assert rows == [f"img_{i:04d}.png" for i in range(3)], name
        assert (out / "features.jsonl").read_text() == reference
        assert sorted((tmp_path / f"{name}.log").read_text().split()) == rows  # each item once
    assert get(ids["d"])["status"] == 4 and not (tmp_path / "d.log").exists()  # the stopped one never ran


def _until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
