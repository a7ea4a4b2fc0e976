"""The admin's view of the cluster on the session's real cluster: nodes, utilisation, tasks per node and project,
and the dashboard links in a task's runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray


def _slow(delay: float) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [{"id": "image_features", "params": {}},
                                                          {"id": "work_probe", "params": {"delay_seconds": delay}}]}


def test_cluster_nodes_tasks_and_dashboard_links(service: Service, folder: Path) -> None:
    import ray

    make_many(folder, 12)
    task_id = service.create(folder, name="admin-view", template=_slow(0.3), execution={"chunk_size": 2})
    running = service.wait(task_id, lambda t: t["status"] == 1 and t["processed_count"] >= 1, allowed={0, 1})

    # While it runs: its driver is on the head (the only node here), and the project counts one running run.
    found: dict = {}

    def listed() -> bool:
        r = service.client.get("/v1/cluster/tasks")
        assert r.status_code == 200, r.text
        found.update({t["task_id"]: t for t in r.json()["tasks"]})
        return bool(found.get(task_id, {}).get("node_id"))

    service.wait(task_id, lambda t: listed(), allowed={1})
    head_id = next(n["NodeID"] for n in ray.nodes() if "node:__internal_head__" in n["Resources"] and n["Alive"])
    mine = found[task_id]
    assert (mine["project_id"], mine["phase"], mine["run_id"], mine["node_id"]) == (
        "p1", "submitted", running["ray_job_id"], head_id)
    assert mine["dashboard_url"] == f"{service.dashboard_url}/#/jobs/{running['ray_job_id']}"

    r = service.client.get("/v1/cluster")
    assert r.status_code == 200, r.text
    cluster = r.json()
    head = next(n for n in cluster["nodes"] if n["node_id"] == head_id)
    assert head["is_head"] and head["alive"] and head["running_tasks"] >= 1
    assert head["resources"]["CPU"] == ray.cluster_resources()["CPU"]
    assert 0 <= head["utilisation"]["CPU"] <= 1
    assert head["utilisation"]["CPU"] == pytest.approx(
        1 - head["available_resources"].get("CPU", 0) / head["resources"]["CPU"], abs=1e-3)
    assert cluster["running_by_project"].get("p1", 0) >= 1
    assert all(v >= 1 for v in cluster["queued_by_project"].values())
    assert cluster["dashboard_url"] == service.dashboard_url

    # The run's Ray job, as the dashboard shows it, names the task, project, type and run.
    job = httpx.get(f"{service.dashboard_url}/api/jobs/{running['ray_job_id']}", timeout=30,
                    headers=_ray_auth()).json()
    assert job["metadata"] == {"rayproc_task_id": task_id, "rayproc_project_id": "p1",
                               "rayproc_task_type": "sys_data_analyse", "rayproc_run_id": running["ray_job_id"]}

    assert service.client.post(f"{service.tasks()}/{task_id}/stop").status_code == 200
    stopped = service.wait_status(task_id, 4, allowed={1})
    assert [run["dashboard_url"] for run in stopped["runs"]] == [mine["dashboard_url"]]
    r = service.client.get("/v1/cluster/tasks")
    assert task_id not in {t["task_id"] for t in r.json()["tasks"]}


def test_cluster_views_are_for_admins_only(service: Service) -> None:
    name = "cluster-viewer"
    service.accounts.create_user(name)
    service.accounts.set_role("p1", name, "viewer")
    _, token = service.accounts.issue_token(name, "t")
    with service.client_for(token) as viewer:
        for path in ("/v1/cluster", "/v1/cluster/tasks"):
            r = viewer.get(path)
            assert r.status_code == 403 and r.json()["error_code"] == "forbidden"
    assert httpx.get(f"{service.url}/v1/cluster/tasks", timeout=30).status_code == 401


def _ray_auth() -> dict[str, str]:
    """Ray's own token, when its token authentication is on for this cluster."""
    token = Path.home() / ".ray" / "auth_token"
    return {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
