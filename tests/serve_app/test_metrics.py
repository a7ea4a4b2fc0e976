"""Metrics after real tasks on the session's cluster: the API's ``/metrics`` (Prometheus text) and Ray's export."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Service
from tests.support.images import make_known_set, make_many

pytestmark = pytest.mark.ray
T = "sys_data_analyse"


def _scrape(service: Service) -> dict[tuple[str, tuple], float]:
    """Every sample of ``GET /metrics`` (sent without a token), by name and sorted labels."""
    r = httpx.get(f"{service.url}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _quiet_scrape(service: Service) -> dict[tuple[str, tuple], float]:
    """A scrape once no run of any test is active, so that no other task's run ends inside the window."""
    from jobs.store import Store

    store = Store(service.settings.database)
    deadline = time.monotonic() + 120
    while store.active_tasks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not store.active_tasks(), "other tasks kept running: the window would count their runs"
    return _scrape(service)


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _grew(before: dict, after: dict, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


def _probe(delay: float) -> dict:
    return {"id": T, "operator_params": [{"id": "image_features", "params": {}},
                                         {"id": "work_probe", "params": {"delay_seconds": delay}}]}


def test_metrics_count_real_tasks_and_read_the_database(service: Service, folder: Path) -> None:
    known, many = folder / "known", folder / "many"
    make_known_set(known)  # 5 images and 2 broken files
    make_many(many, 16)
    before = _quiet_scrape(service)

    done = service.create(known, name="metrics-known")
    service.wait_status(done, 2, allowed={0, 1})
    resumed = service.create(many, template=_probe(0.15), execution={"chunk_size": 2}, name="metrics-resumed")
    service.wait(resumed, lambda t: t["processed_count"] >= 2, allowed={0, 1})
    assert service.client.post(f"{service.tasks()}/{resumed}/stop").status_code == 200
    service.wait_status(resumed, 4, allowed={1})
    assert service.client.post(f"{service.tasks()}/{resumed}/resume").status_code == 200
    final = service.wait_status(resumed, 2, allowed={0, 1})
    assert final["processed_count"] == 16 and len(final["runs"]) == 2
    missing = service.client.get(f"{service.tasks()}/NoSuchTask0123456789")
    assert missing.status_code == 404

    after = _scrape(service)
    assert _grew(before, after, "rayproc_tasks_created_total", task_type=T) == 2
    assert _grew(before, after, "rayproc_runs_stopped_total") == 1
    assert _grew(before, after, "rayproc_runs_resumed_total") == 1
    assert _grew(before, after, "rayproc_runs_submitted_total") == 3
    assert _grew(before, after, "rayproc_runs_retried_total") == 0
    assert _grew(before, after, "rayproc_runs_ended_total", task_type=T, outcome="completed") == 2
    assert _grew(before, after, "rayproc_runs_ended_total", task_type=T, outcome="stopped") == 1
    assert _grew(before, after, "rayproc_items_processed_total", task_type=T) == 5 + 16
    assert _grew(before, after, "rayproc_items_failed_total", task_type=T) == 2
    durations = [_grew(before, after, "rayproc_run_duration_seconds_count", task_type=T, outcome=o)
                 for o in ("completed", "stopped")]
    assert durations == [2, 1]
    # The stopped run ran at least its two slow items (0.15 s each) before it stopped.
    assert _grew(before, after, "rayproc_run_duration_seconds_sum", task_type=T, outcome="stopped") >= 0.3

    # Requests are counted by route template, never by raw path.
    route = "/v2/{project_id}/processor-tasks/{task_id:path}"
    assert _grew(before, after, "rayproc_api_requests_total", method="GET", route=route, status="404") == 1
    assert _grew(before, after, "rayproc_api_requests_total", method="GET", route=route, status="200") >= 5
    assert not any("NoSuchTask" in str(labels) for _, labels in after)

    # The gauges say what the database says.
    with sqlite3.connect(service.settings.db_path) as db:
        by_status = dict(db.execute("SELECT status, COUNT(*) FROM tasks WHERE task_type = ? GROUP BY status",
                                    (T,)).fetchall())
        queued = db.execute("SELECT COUNT(*) FROM runs r JOIN tasks t ON t.current_run = r.run_id "
                            "WHERE r.queued = 1 AND t.status = 0").fetchone()[0]
    assert _value(after, "rayproc_tasks", status="completed", task_type=T) == by_status[2]
    assert _value(after, "rayproc_queue_depth") == queued


def _ray_export_urls() -> list[str]:
    import ray

    return [f"http://{n['NodeManagerAddress']}:{n['MetricsExportPort']}/metrics"
            for n in ray.nodes() if n["Alive"] and n.get("MetricsExportPort")]


def test_the_same_metrics_reach_rays_prometheus_export(service: Service, folder: Path) -> None:
    make_many(folder, 2)
    service.wait_status(service.create(folder, name="metrics-ray"), 2, allowed={0, 1})
    urls = _ray_export_urls()
    assert urls, "the cluster exports no metrics port"
    # Ray's metrics agent publishes what processes recorded every few seconds: a bounded wait, then the check.
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    wanted = {"ray_rayproc_tasks_created_total", "ray_rayproc_api_requests_total", "ray_rayproc_tasks"}
    while time.monotonic() < deadline and not wanted <= seen:
        for url in urls:
            try:
                text = httpx.get(url, timeout=5).text
            except httpx.HTTPError:
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in wanted and (sample.name != "ray_rayproc_tasks_created_total"
                                                  or sample.labels.get("task_type") == T):
                        seen.add(sample.name)
        time.sleep(1)
    assert wanted <= seen, f"missing from Ray's export: {wanted - seen}"


def test_health_and_readiness_need_no_token(service: Service) -> None:
    # Behind Serve, /-/healthz is answered by Serve's own HTTP proxy (which is what fronts the API), as text.
    r = httpx.get(f"{service.url}/-/healthz", timeout=30)
    assert r.status_code == 200 and r.text == "success"
    r = httpx.get(f"{service.url}/-/readyz", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["ray"] == "reachable" and body["database"] == "reachable"
    assert body["jobs_api_version"]


def test_readiness_says_why_not(tmp_path: Path) -> None:
    """The app outside Serve, with a Ray address nothing listens on: live, not ready, and why."""
    from fastapi.testclient import TestClient

    from serve_app.accounts import Accounts
    from serve_app.assembly import build_service
    from serve_app.main import create_app
    from serve_app.settings import Settings
    from tests.support.cluster import free_port

    settings = Settings(data_dir=tmp_path, dashboard_url=f"http://127.0.0.1:{free_port()}",
                        ray_read_timeout_seconds=1).resolved()
    service = build_service(settings)
    with TestClient(create_app(service, Accounts(settings.db_path))) as client:
        assert client.get("/-/healthz").text == "success"  # the answer Serve's proxy gives in front of the app
        r = client.get("/-/readyz")
        assert r.status_code == 503
        assert r.json()["error_code"] == "ray_unavailable" and "does not answer" in r.json()["error_msg"]
        assert client.get("/metrics").status_code == 200
