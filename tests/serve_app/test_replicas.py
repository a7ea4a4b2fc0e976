"""Two API replicas on one PostgreSQL database: a task created through one is stopped and resumed through the
other, while both replicas' dispatchers and reconcilers run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import Service
from tests.support.images import make_many
from tests.support.postgres import PostgresServer, needs_postgres

pytestmark = [pytest.mark.ray, needs_postgres]

APP = "rayproc-replicas"
PREFIX = "/replicas"
#: Serve's header for multiplexed routing; the API keeps each value to the replica that first answered it.
STICKY = "serve_multiplexed_model_id"


@pytest.fixture
def replicas(service: Service, postgres_server: PostgresServer, tmp_path: Path) -> Iterator[httpx.Client]:
    from ray import serve

    from serve_app.deployment import build_app

    settings = service.settings.model_copy(update={
        "data_dir": service.root / "replicas-data", "database_url": SecretStr(postgres_server.new_database()),
        "api_replicas": 2, "auth_enabled": False})
    serve.run(build_app(settings), name=APP, route_prefix=PREFIX, blocking=False)
    client = httpx.Client(base_url=service.url + PREFIX, timeout=60)
    try:
        _wait_for(lambda: client.get("/healthz").status_code == 200, "the replicas to answer")
        yield client
    finally:
        client.close()
        serve.delete(APP)


def _wait_for(predicate, what: str, timeout: float = 300.0, seen=lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last seen {seen()}")
        time.sleep(0.2)


def _pins(client: httpx.Client) -> dict[str, str]:
    """A sticky-routing value for each of the two replicas: {replica id: value}."""
    pins: dict[str, str] = {}
    deadline = time.monotonic() + 120
    n = 0
    while len(pins) < 2:
        assert time.monotonic() < deadline, f"only replicas {sorted(pins)} answered"
        value = f"pin-{n}"
        n += 1
        replica = client.get("/healthz", headers={STICKY: value}).headers["X-Rayproc-Replica"]
        pins.setdefault(replica, value)
    for replica, value in pins.items():  # the routers learn where each value lives: then it stays there
        _wait_for(lambda: all(client.get("/healthz", headers={STICKY: value}).headers["X-Rayproc-Replica"]
                              == replica for _ in range(5)), f"value {value} to keep to replica {replica}")
    return pins


def _task(client: httpx.Client, task_id: str) -> dict:
    r = client.get(f"/v2/p1/processor-tasks/{task_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_task_created_through_one_replica_is_stopped_and_resumed_through_the_other(
        replicas: httpx.Client, service: Service, folder: Path, tmp_path: Path) -> None:
    (first, first_pin), (second, second_pin) = _pins(replicas).items()
    assert first != second
    make_many(folder, 24)
    body = {"name": "two-replicas", "data_source": {"type": "OBS", "source": str(folder)},
            "execution": {"chunk_size": 2},
            "template": {"id": "sys_data_analyse", "operator_params": [
                {"id": "image_features", "params": {}},
                {"id": "work_probe", "params": {"delay_seconds": 0.1, "log_path": str(tmp_path / "work.log")}}]}}
    r = replicas.post("/v2/p1/processor-tasks", json=body, headers={STICKY: first_pin})
    assert r.status_code == 200, r.text
    assert r.headers["X-Rayproc-Replica"] == first
    task_id = r.json()["task_id"]
    _wait_for(lambda: _task(replicas, task_id)["processed_count"] >= 4, "the run to make progress")

    r = replicas.post(f"/v2/p1/processor-tasks/{task_id}/stop", headers={STICKY: second_pin})
    assert r.status_code == 200, r.text
    assert r.headers["X-Rayproc-Replica"] == second
    _wait_for(lambda: _task(replicas, task_id)["status"] == 4, "the task to stop")
    assert _task(replicas, task_id)["processed_count"] < 24

    r = replicas.post(f"/v2/p1/processor-tasks/{task_id}/resume", headers={STICKY: second_pin})
    assert r.status_code == 200, r.text
    assert r.headers["X-Rayproc-Replica"] == second
    _wait_for(lambda: _task(replicas, task_id)["status"] == 2, "the resumed task to complete",
              seen=lambda: {k: _task(replicas, task_id).get(k) for k in ("status", "processed_count", "error_msg")})
    final = _task(replicas, task_id)
    assert final["processed_count"] == 24 and len(final["ray_job_ids"]) == 2
    work = (tmp_path / "work.log").read_text().splitlines()
    assert sorted(work) == sorted(set(work)) and len(work) == 24  # each item once, across both runs
