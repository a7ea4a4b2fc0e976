"""synapse-sdk's AgentClient surface (``/agent/v1/{project_id}/``) against the live service.

The suite runs on Python 3.11 and synapse-sdk needs 3.12, so the requests the real SDK sends
were recorded (``tests/support/synapse_record.py`` -> ``synapse_requests.json``) and are
replayed here byte for byte; each answer is checked to be what the SDK parses. Where a 3.12
interpreter with synapse-sdk is present, the real SDK also runs against the service.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jobs.launcher import JobLauncher
from jobs.status import TaskStatus
from tests.conftest import Service, free_port
from tests.serve_app.test_ray_unreachable import _app, _seed_task
from tests.support.images import make_many

pytestmark = pytest.mark.ray

SUPPORT = Path(__file__).resolve().parents[1] / "support"
RECORDED = json.loads((SUPPORT / "synapse_requests.json").read_text())["calls"]
P, OTHER = "agent", "agent-other"
RAY_STATUSES = {"PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"}


@dataclass
class World:
    token: str
    done: str  # a completed task in P
    folder: Path


def _slow_template(delay: float = 0.3) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}}, {"id": "work_probe", "params": {"delay_seconds": delay}}]}


@pytest.fixture(scope="module")
def world(service: Service) -> World:
    acc = service.accounts
    acc.create_project(P)
    acc.create_project(OTHER)
    acc.create_user("agent-member")
    acc.set_role(P, "agent-member", "member")
    folder = service.root / "inputs" / "agent"
    make_many(folder, 24)
    done = service.create(folder, project=P, name="agent-done")
    service.wait_status(done, 2, allowed={0, 1}, project=P)
    return World(acc.issue_token("agent-member")[1], done, folder)


def _slow_task(service: Service, world: World, delay: float = 0.3) -> str:
    return service.create(world.folder, project=P, name="agent-slow", template=_slow_template(delay),
                          execution={"chunk_size": 2})


def replay(service: Service, call: str, *, token: str, job_id: str = "", project: str = P) -> httpx.Response:
    """Send the request the SDK sent for ``call``, with this test's project, job and token."""
    rec = RECORDED[call]
    headers = {k: v.replace("{token}", token) for k, v in rec["headers"].items()}
    path = rec["path"].replace("{project_id}", project).replace("{job_id}", job_id)
    with httpx.Client(base_url=service.url, timeout=120) as client:
        return client.request(rec["method"], path, params=rec["query"], headers=headers,
                              content=rec["body"].encode() if rec["body"] else None)


def _sse(response: httpx.Response) -> list[dict]:
    """The events as synapse's stream_tail_job_logs reads them: every non-empty line is ``data: <json>``."""
    lines = [line for line in response.text.split("\n") if line]
    assert all(line.startswith("data: ") for line in lines), lines[:5]
    return [json.loads(line[len("data: "):]) for line in lines]


def test_the_recording_covers_every_call_the_service_offers() -> None:
    assert set(RECORDED) == {"list_jobs", "get_job", "get_job_logs", "stream_tail_job_logs", "tail_job_logs_http",
                             "stop_job", "resume_job", "health_check"}
    assert all(rec["headers"]["Authorization"] == "Token {token}" for rec in RECORDED.values())
    assert {rec["path"] for rec in RECORDED.values()} == {
        "/agent/v1/{project_id}/jobs/", "/agent/v1/{project_id}/jobs/{job_id}/",
        "/agent/v1/{project_id}/jobs/{job_id}/logs/", "/agent/v1/{project_id}/jobs/{job_id}/logs/stream/",
        "/agent/v1/{project_id}/jobs/{job_id}/stop/", "/agent/v1/{project_id}/jobs/{job_id}/resume/",
        "/agent/v1/{project_id}/health/"}


def test_reads_answer_what_the_sdk_parses(service: Service, world: World) -> None:
    r = replay(service, "health_check", token=world.token)
    assert r.status_code == 200 and r.json() == {"status": "ok", "ray": "reachable"}

    jobs = replay(service, "list_jobs", token=world.token).json()
    assert isinstance(jobs, list) and all(j["status"] in RAY_STATUSES for j in jobs)
    assert world.done in [j["job_id"] for j in jobs]

    job = replay(service, "get_job", token=world.token, job_id=world.done).json()
    assert job["job_id"] == job["submission_id"] == world.done and job["status"] == "SUCCEEDED"
    assert job["metadata"]["rayproc_project_id"] == P and job["end_time"] >= job["start_time"]
    assert job["ray_job_id"] == job["ray_job_ids"][-1] and job["completion_percentage"] == 100.0

    r = replay(service, "get_job_logs", token=world.token, job_id=world.done)
    assert r.status_code == 200
    logs = r.json()  # synapse parses JSON first: the log arrives as one string
    assert isinstance(logs, str) and world.done in logs

    for call in ("stream_tail_job_logs", "tail_job_logs_http"):
        r = replay(service, call, token=world.token, job_id=world.done)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r)
        assert events[-1] == {"type": "complete"} and all(e["type"] == "log" for e in events[:-1])
        assert "\n".join(e["message"] for e in events[:-1]).strip() == logs.strip()


def test_stop_and_resume_through_the_recorded_requests(service: Service, world: World) -> None:
    task_id = _slow_task(service, world)
    service.wait(task_id, lambda t: t["processed_count"] >= 2, allowed={0, 1}, project=P)
    stream = httpx.Client(base_url=service.url, timeout=120)
    r = replay(service, "stop_job", token=world.token, job_id=task_id)
    assert r.status_code == 200, r.text
    assert r.json()["stopped"] is True and r.json()["status"] in ("RUNNING", "STOPPED")
    assert r.json()["stop_requested"] is True
    stopped = service.wait_status(task_id, 4, allowed={1}, project=P)

    again = replay(service, "stop_job", token=world.token, job_id=task_id)
    assert again.status_code == 400 and again.json()["error_code"] == "invalid_state"
    assert "already stopped" in again.json()["error_msg"]

    r = replay(service, "resume_job", token=world.token, job_id=task_id)
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("PENDING", "RUNNING") and len(r.json()["ray_job_ids"]) == 2
    # The stream follows the new run while it grows and ends when it ends.
    with stream.stream("GET", f"/agent/v1/{P}/jobs/{task_id}/logs/stream/",
                       headers={"Authorization": f"Token {world.token}"}) as live:
        assert live.status_code == 200
        last = None
        for line in live.iter_lines():
            if line:
                last = json.loads(line.removeprefix("data: "))
    assert last == {"type": "complete"}
    final = service.get(task_id, project=P)
    assert final["status"] == int(TaskStatus.COMPLETED) and final["processed_count"] >= stopped["processed_count"]
    stream.close()


@pytest.mark.parametrize(("job_id", "status", "fragment"), [
    ("", 400, "job ID cannot be empty"),
    ("a%20b", 400, "Invalid job ID format"),
    ("x" * 101, 400, "job ID too long"),
    ("noSuchJob0123456789", 404, "not found"),
], ids=["empty", "bad-chars", "too-long", "unknown"])
@pytest.mark.parametrize("call", ["get_job", "get_job_logs", "stream_tail_job_logs", "stop_job", "resume_job"])
def test_ids_follow_synapses_rules(service: Service, world: World, call: str, job_id: str, status: int,
                                   fragment: str) -> None:
    r = replay(service, call, token=world.token, job_id=job_id)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error_msg"] and "Traceback" not in r.text


def test_other_projects_and_tokens(service: Service, world: World) -> None:
    for call in ("get_job", "stop_job", "get_job_logs"):
        r = replay(service, call, token=world.token, job_id=world.done, project=OTHER)
        assert r.status_code == 404 and world.done not in r.text  # not a member of OTHER
    r = replay(service, "list_jobs", token="rpt_0123456789abcdef." + "A" * 43)
    assert r.status_code == 401


def test_ray_unreachable_is_503_and_changes_nothing(tmp_path: Path) -> None:
    client, store, folder = _app(tmp_path, JobLauncher(f"http://127.0.0.1:{free_port()}", call_timeout_seconds=2))
    task_id = _seed_task(store, folder, TaskStatus.RUNNING)
    for method, suffix in (("POST", "stop/"), ("GET", "logs/"), ("GET", "logs/stream/")):
        r = client.request(method, f"/agent/v1/p1/jobs/{task_id}/{suffix}")
        assert r.status_code == 503 and r.json()["error_code"] == "ray_unavailable", r.text
    assert store.get_task(task_id, "p1").status == TaskStatus.RUNNING and not store.get_task(task_id, "p1").stop_requested
    assert client.get("/agent/v1/p1/health/").json() == {"status": "ok", "ray": "unreachable"}


ROOT = Path(__file__).resolve().parents[2]
SDK_VERSION = json.loads((SUPPORT / "synapse_requests.json").read_text())["sdk"].split()[-1]


def _synapse_python() -> tuple[str | None, str]:
    """The Python 3.12 with synapse-sdk that `.ci/run` prepares (``.venv312`` in the checkout, or
    ``RAYPROC_SYNAPSE_PYTHON``). Nothing is installed here: tests download nothing. Returns ``(python, why not)``."""
    python = os.environ.get("RAYPROC_SYNAPSE_PYTHON") or str(ROOT / ".venv312" / "bin" / "python")
    if not Path(python).exists():
        return None, (f"no Python 3.12 with synapse-sdk at {python} (make it with: python3.12 -m venv .venv312 && "
                      f".venv312/bin/pip install synapse-sdk=={SDK_VERSION})")
    found = subprocess.run([python, "-c", "import synapse_sdk.clients.agent"], capture_output=True, text=True)
    if found.returncode != 0:
        return None, f"synapse-sdk does not import under {python}: {found.stderr[-300:]}"
    return python, ""


_SYNAPSE_PYTHON, _NO_SYNAPSE = _synapse_python()


# CI prepares the 3.12 venv, so there it must run: a missing venv fails rather than skips.
@pytest.mark.skipif(_SYNAPSE_PYTHON is None and not os.environ.get("CI"),
                    reason=f"the real synapse-sdk cannot run here: {_NO_SYNAPSE}; the recorded requests still ran")
def test_the_real_sdk_under_python_312(service: Service, world: World) -> None:
    python = _SYNAPSE_PYTHON
    assert python is not None, _NO_SYNAPSE
    running = _slow_task(service, world, delay=1.5)  # still running once the SDK has started up
    service.wait(running, lambda t: t["processed_count"] >= 2, allowed={0, 1}, project=P)
    proc = subprocess.run([python, str(SUPPORT / "synapse_live.py"), f"{service.url}/agent/v1/{P}", world.token,
                           world.done, running], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["health_check"] == {"status": "ok", "ray": "reachable"}
    assert world.done in [j["job_id"] for j in out["list_jobs"]]
    assert out["get_job"]["status"] == "SUCCEEDED" and world.done in out["get_job_logs"]
    assert "\n".join(out["tail_job_logs"]).strip() == out["get_job_logs"].strip()
    assert out["stop_finished"]["error"] == 400 and "already completed" in out["stop_finished"]["detail"]["error_msg"]
    assert out["stop_invalid"]["error"] == 400 and out["stop_unknown"]["error"] == 404
    assert out["stop_running"].get("stopped") is True, out["stop_running"]
    assert out["after_stop"]["status"] == "STOPPED"
    assert out["resume"]["status"] in ("PENDING", "RUNNING")
    # Leave no slow run behind for the tests after this one.
    assert service.client.post(f"{service.tasks(P)}/{running}/stop").status_code in (200, 400)
    service.wait(running, lambda t: t["status"] in (2, 4), allowed={0, 1, 2, 4}, project=P)
