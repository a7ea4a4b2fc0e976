"""End to end against the real local Ray cluster: HTTP -> Serve -> Ray job -> results."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_known_set, make_many
from tests.support.processes import pids_with
from tests.support.serve_process import wait_for

pytestmark = pytest.mark.ray

TABLE4_FIELDS = {
    "task_id", "name", "description", "data_source", "inputs", "template", "status", "duration_seconds",
    "create_time", "version_id", "version_name", "version_count", "is_current", "work_path", "workspace_id",
}


def _features(task: dict) -> dict[str, dict]:
    out = Path(task["work_path"]["output_path"]) / "features.jsonl"
    return {r["item"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_analysis_runs_to_completion_with_known_brightness_and_blur(service: Service, folder: Path) -> None:
    known = make_known_set(folder)
    before = int(time.time() * 1000)
    task_id = service.create(folder, name="known-set", description="fixture images",
                             template={"id": "sys_data_analyse",
                                       "operator_params": [{"id": "image_features", "params": {"histogram_bins": 10}}]})
    task = service.wait_status(task_id, 2, allowed={0, 1})

    assert TABLE4_FIELDS <= task.keys()
    assert before <= task["create_time"] <= int(time.time() * 1000)
    assert task["completion_percentage"] == 100.0
    assert (task["processed_count"], task["failed_count"], task["total_count"]) == (5, 2, 7)
    assert "error_msg" not in task
    assert len(task["ray_job_ids"]) == 1 and task["ray_job_ids"][0] == task["ray_job_id"]

    result = task["result"]
    assert result["item_count"] == 7 and result["processed_count"] == 5
    assert {f["item"]: f["error_code"] for f in result["failed_items"]} == {
        "truncated.png": "truncated", "text.jpg": "not_an_image"}
    for name in ("brightness", "blur_score"):
        hist = result["features"][name]["histogram"]
        assert sum(hist["counts"]) == 5 and len(hist["counts"]) == 10 and len(hist["edges"]) == 11

    rows = _features(task)
    assert set(rows) == {k for k, v in known.items() if v != "corrupt"}
    assert rows["dark.png"]["brightness"] == pytest.approx(10 / 255, abs=1e-3)
    assert rows["bright.png"]["brightness"] == pytest.approx(245 / 255, abs=1e-3)
    assert rows["dark.png"]["blur_score"] == pytest.approx(0.0, abs=1e-6)
    assert rows["sharp.png"]["blur_score"] > 20 * rows["blurry.png"]["blur_score"] > 0
    assert (rows["sharp.png"]["width"], rows["sharp.png"]["height"]) == (96, 64)
    assert rows["sharp.png"]["aspect_ratio"] == pytest.approx(1.5)


def test_ray_job_carries_task_metadata(service: Service, folder: Path) -> None:
    from ray.job_submission import JobSubmissionClient

    make_many(folder, 2)
    task_id = service.create(folder, project="meta-project")
    task = service.wait_status(task_id, 2, allowed={0, 1}, project="meta-project")
    jobs = JobSubmissionClient(service.dashboard_url)
    deadline = time.monotonic() + 30
    while (info := jobs.get_job_info(task["ray_job_id"])).status.value != "SUCCEEDED":
        assert info.status.value == "RUNNING"  # the runner records completion just before it exits
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert info.metadata["rayproc_task_id"] == task_id
    assert info.metadata["rayproc_project_id"] == "meta-project"
    assert info.metadata["rayproc_task_type"] == "sys_data_analyse"
    assert "exec " in info.entrypoint and "jobs.runner" in info.entrypoint


def _probe_template(log_path: Path, delay: float, **hold) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}},
        {"id": "work_probe", "params": {"delay_seconds": delay, "log_path": str(log_path), **hold}},
    ]}


def test_stop_then_resume_processes_each_item_once_and_matches_an_uninterrupted_run(
        service: Service, folder: Path, tmp_path: Path) -> None:
    n = 48
    make_many(folder, n)
    log, release = tmp_path / "work.log", tmp_path / "release"
    # After six items the probe holds every item until ``release`` exists: the stop lands mid-run
    # however fast the machine is.
    task_id = service.create(folder, name="resumable", execution={"chunk_size": 2},
                             template=_probe_template(log, 0.05, release_file=str(release), hold_after=6))
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 6, 120, "six items processed")

    r = service.client.post(f"{service.tasks()}/{task_id}/stop")
    release.touch()
    assert r.status_code == 200, r.text
    assert r.json()["stop_requested"] is True
    stopped = service.wait_status(task_id, 4, allowed={1})
    done_at_stop = stopped["processed_count"]
    assert 6 <= done_at_stop < n, "the stop must land mid-run for this test to mean anything"
    first_run_items = Counter(log.read_text().splitlines())
    assert sum(first_run_items.values()) == done_at_stop  # chunks in flight were finished and kept

    r = service.client.post(f"{service.tasks()}/{task_id}/resume")
    assert r.status_code == 200, r.text
    assert r.json()["status"] in (0, 1)
    final = service.wait_status(task_id, 2, allowed={0, 1})
    assert len(final["ray_job_ids"]) == 2 and final["ray_job_ids"][1] == final["ray_job_id"]

    work = Counter(log.read_text().splitlines())
    assert set(work) == {f"img_{i:04d}.png" for i in range(n)}
    assert max(work.values()) == 1, f"items processed twice: {[k for k, v in work.items() if v > 1]}"

    # The same task, uninterrupted, gives byte-identical per-item output and the same result.
    ref_id = service.create(folder, name="uninterrupted", template=_probe_template(tmp_path / "ref.log", 0.0),
                            execution={"chunk_size": 2})
    ref = service.wait_status(ref_id, 2, allowed={0, 1})
    out, ref_out = Path(final["work_path"]["output_path"]), Path(ref["work_path"]["output_path"])
    assert (out / "features.jsonl").read_bytes() == (ref_out / "features.jsonl").read_bytes()
    assert final["result"] == ref["result"]


def test_stop_and_resume_refuse_wrong_states(service: Service, folder: Path) -> None:
    make_many(folder, 3)
    task_id = service.create(folder)
    service.wait_status(task_id, 2, allowed={0, 1})
    base = f"{service.tasks()}/{task_id}"

    r = service.client.post(f"{base}/stop")
    assert r.status_code == 400
    assert r.json()["error_code"] == "invalid_state" and "completed" in r.json()["error_msg"]

    r = service.client.post(f"{base}/resume")
    assert r.status_code == 400
    assert r.json()["error_code"] == "invalid_state" and "completed" in r.json()["error_msg"]

    assert service.client.delete(base).status_code == 204
    assert service.client.get(base).status_code == 404
    assert service.client.post(f"{base}/stop").status_code == 404


def test_running_task_cannot_be_deleted_and_stop_is_final(service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 20)
    task_id = service.create(folder, template=_probe_template(tmp_path / "log", 0.2), execution={"chunk_size": 1})
    service.wait_status(task_id, 1, allowed={0})
    base = f"{service.tasks()}/{task_id}"
    r = service.client.delete(base)
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"

    assert service.client.post(f"{base}/stop").status_code == 200
    service.wait_status(task_id, 4, allowed={1})
    r = service.client.post(f"{base}/stop")
    assert r.status_code == 400 and "stopped" in r.json()["error_msg"]
    assert service.client.delete(base).status_code == 204


def test_failed_task_records_a_classified_error_and_is_not_retried(service: Service, folder: Path) -> None:
    (folder / "readme.txt").write_text("no images here")
    task_id = service.create(folder)
    task = service.wait_status(task_id, 3, allowed={0, 1})
    assert task["error_type"] == "no_items"
    assert "no image files" in task["error_msg"]
    assert "result" not in task
    # An input failure would fail again: well past the retry backoff and several dispatch passes, it stays.
    settle = time.monotonic() + 5 * (service.settings.retry_backoff_seconds + service.settings.dispatch_interval_seconds)
    while time.monotonic() < settle:
        task = service.get(task_id)
        assert task["status"] == 3 and len(task["ray_job_ids"]) == 1
        time.sleep(0.1)
    assert task["runs"][0]["outcome"] == "failed"


def test_a_killed_driver_heals_by_itself_and_matches_an_uninterrupted_run(
        service: Service, folder: Path, tmp_path: Path) -> None:
    import os
    import signal

    n = 16
    make_many(folder, n)
    log = tmp_path / "work.log"
    task_id = service.create(folder, template=_probe_template(log, 0.1), execution={"chunk_size": 1})
    task = service.wait(task_id, lambda t: t["status"] == 1 and t["processed_count"] >= 3, allowed={0, 1})
    pids = pids_with(f"--run-id {task['ray_job_id']}", "jobs.runner")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    # Nobody resumes it: the run is settled as job_died and a new one is queued from the committed chunks.
    # (It may show failed for a moment, between the settling and the retry's queueing.)
    healed = service.wait_status(task_id, 2, allowed={0, 1, 3})
    assert len(healed["ray_job_ids"]) == 2 and healed["ray_job_ids"][0] == task["ray_job_id"]
    first, second = healed["runs"]
    assert first["outcome"] == "failed" and task["ray_job_id"] in first["reason"]
    # The reason is for the task's users: no command line, interpreter or database path.
    for leak in ("jobs.runner", "--db", str(service.settings.db_path), sys.executable):
        assert leak not in first["reason"], first["reason"]
    assert (first["attempt"], second["attempt"], second["outcome"]) == (1, 2, "completed")
    work = Counter(log.read_text().splitlines())
    assert set(work) == {f"img_{i:04d}.png" for i in range(n)}
    in_flight = 2 * (os.cpu_count() or 1) + 1  # the runner's chunks on the cluster, and one in its driver
    assert sum(work.values()) - n <= in_flight, "only chunks in flight at the kill may be redone"

    ref = service.wait_status(service.create(folder, template=_probe_template(tmp_path / "ref.log", 0.0),
                                             execution={"chunk_size": 1}), 2, allowed={0, 1})
    out, ref_out = Path(healed["work_path"]["output_path"]), Path(ref["work_path"]["output_path"])
    for name in ("features.jsonl", "failures.jsonl"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes(), name
    assert healed["result"] == ref["result"]



def test_a_job_that_dies_while_the_service_is_down_is_settled_and_healed_on_restart(
        service: Service, folder: Path, tmp_path: Path) -> None:
    import os
    import signal

    from ray import serve

    from jobs.store import Store
    from serve_app.deployment import APP_NAME, build_app

    make_many(folder, 20)
    task_id = service.create(folder, template=_probe_template(tmp_path / "log", 0.3), execution={"chunk_size": 1})
    task = service.wait_status(task_id, 1, allowed={0})
    serve.delete(APP_NAME)  # the service goes away; the Ray job goes on
    try:
        pids = pids_with(f"--run-id {task['ray_job_id']}", "jobs.runner")
        os.kill(pids[0], signal.SIGKILL)
        from ray.job_submission import JobSubmissionClient

        jobs = JobSubmissionClient(service.dashboard_url)
        deadline = time.monotonic() + 30
        while jobs.get_job_status(task["ray_job_id"]).value != "FAILED":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert Store(service.settings.db_path).get_task(task_id).status == 1  # nobody settled it meanwhile
    finally:
        serve.run(build_app(service.settings), name=APP_NAME, route_prefix="/")
    settled = service.get(task_id)  # the first read after the restart: settled at start-up, and retried
    assert settled["status"] in (0, 1, 2) and len(settled["runs"]) == 2
    assert settled["runs"][0]["outcome"] == "failed" and "without recording an outcome" in settled["runs"][0]["reason"]
    healed = service.wait_status(task_id, 2, allowed={0, 1})
    assert healed["runs"][1]["attempt"] == 2 and (healed["processed_count"], healed["failed_count"]) == (20, 0)


def test_hostile_images_are_each_reported_and_the_task_completes(service: Service, folder: Path) -> None:
    from tests.support.hostile import write_hostile_set

    expected = write_hostile_set(folder)
    task = service.wait_status(service.create(folder, name="hostile"), 2, allowed={0, 1})
    out = Path(task["work_path"]["output_path"])
    outcomes = {r["item"]: "ok" for r in map(json.loads, (out / "features.jsonl").read_text().splitlines())}
    outcomes.update({r["item"]: r["error_code"]
                     for r in map(json.loads, (out / "failures.jsonl").read_text().splitlines())})
    assert set(outcomes) == set(expected)
    for item, outcome in outcomes.items():
        assert outcome in expected[item], (item, outcome)
    assert task["processed_count"] + task["failed_count"] == len(expected)
    assert task["result"]["failures_by_reason"]["too_many_pixels"] == 1
