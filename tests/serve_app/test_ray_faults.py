"""Faults of the service's own Ray, on the real test cluster: a hung Jobs API freezes nothing."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_many
from tests.support.processes import pids_with

pytestmark = pytest.mark.ray


@contextmanager
def paused_dashboard():
    """SIGSTOP this cluster's dashboard process (the Jobs API's HTTP server), always SIGCONT it after."""
    import ray

    session = ray._private.worker._global_node.get_session_dir_path()
    pids = pids_with("dashboard/dashboard.py", session)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGSTOP)
    try:
        yield pids[0]
    finally:
        os.kill(pids[0], signal.SIGCONT)


def _timed(call):
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_with_the_jobs_api_paused_reads_answer_within_a_second_and_writes_are_503(
        service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 6)
    template = {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}}, {"id": "work_probe", "params": {"delay_seconds": 1.5}}]}
    task_id = service.create(folder, template=template, execution={"chunk_size": 1})
    service.wait_status(task_id, 1, allowed={0})
    base = service.tasks()
    count_before = service.client.get(base).json()["count"]
    reads = [f"{base}/{task_id}", base, "/api/projects/imports/imports/1/", "/v2/imports/datasets", "/healthz"]

    with paused_dashboard(), ThreadPoolExecutor(8) as pool:
        # More writes at once than Serve's default of 5 requests a replica.
        writes = [pool.submit(service.client.post, base, json={
            "name": "w", "data_source": {"type": "OBS", "source": str(folder)},
            "template": {"id": "sys_data_analyse"}}) for _ in range(6)]
        deadline = time.monotonic() + 3.0
        rounds = 0
        while time.monotonic() < deadline:  # the task's progress goes stale meanwhile: its GET asks Ray
            for path in reads:
                r, took = _timed(lambda: service.client.get(path))
                assert r.status_code in (200, 404) and took < 1.0, (path, took, r.text)
            rounds += 1
        health = service.client.get("/healthz").json()
        # The service has now seen Ray fail to answer: a create is refused at once, without asking Ray.
        late, late_took = _timed(lambda: service.client.post(base, json={
            "name": "late", "data_source": {"type": "OBS", "source": str(folder)},
            "template": {"id": "sys_data_analyse"}}))
        answers = [w.result(timeout=60) for w in writes]
    assert rounds >= 2
    assert health == {"status": "ok", "ray": "unreachable"}
    assert late.status_code == 503 and late.json()["error_code"] == "ray_unavailable" and late_took < 1.0, late.text
    assert set(late.json()) == {"error_code", "error_msg"}
    # The creates sent as the pause began, before the service knew Ray was away, were either queued (they ask
    # Ray nothing) or refused in the same shape; none waited on Ray.
    queued = []
    for r in answers:
        if r.status_code == 200:
            queued.append(r.json()["task_id"])
        else:
            assert r.status_code == 503 and r.json()["error_code"] == "ray_unavailable", r.text
            assert set(r.json()) == {"error_code", "error_msg"}
    # Nothing recorded was lost: the refused creates left nothing, the queued ones and the running task complete.
    assert service.client.get(base).json()["count"] == count_before + len(queued)
    done = service.wait_status(task_id, 2, allowed={1})
    assert done["processed_count"] == 6
    for queued_id in queued:
        assert service.wait_status(queued_id, 2, allowed={0, 1})["processed_count"] == 6
    assert service.client.get("/healthz").json()["ray"] == "reachable"


def test_a_source_that_vanishes_mid_run_fails_the_task_and_a_resume_after_it_is_back_completes_it_exactly(
        service: Service, folder: Path, tmp_path: Path) -> None:
    n = 24
    make_many(folder, n)

    def template(delay: float) -> dict:
        return {"id": "sys_data_analyse", "operator_params": [
            {"id": "image_features", "params": {}}, {"id": "work_probe", "params": {"delay_seconds": delay}}]}

    task_id = service.create(folder, template=template(0.3), execution={"chunk_size": 2})
    service.wait(task_id, lambda t: t["processed_count"] >= 4, allowed={0, 1})
    away = folder.with_name(folder.name + "-away")
    folder.rename(away)  # the source goes away at once, as a moved folder or an unmounted store does
    try:
        failed = service.wait_status(task_id, 3, allowed={1})
    finally:
        away.rename(folder)
    assert failed["error_type"] == "source_unavailable", failed
    assert "restore" in failed["error_msg"] and failed["processed_count"] < n

    r = service.client.post(f"{service.tasks()}/{task_id}/resume")
    assert r.status_code == 200, r.text
    final = service.wait_status(task_id, 2, allowed={0, 1})
    assert (final["processed_count"], final["failed_count"]) == (n, 0)

    ref = service.wait_status(service.create(folder, template=template(0.0), execution={"chunk_size": 2}), 2,
                              allowed={0, 1})
    out, ref_out = Path(final["work_path"]["output_path"]), Path(ref["work_path"]["output_path"])
    assert (out / "features.jsonl").read_bytes() == (ref_out / "features.jsonl").read_bytes()
    assert final["result"] == ref["result"]


def test_an_ended_runs_log_is_kept_under_its_work_path_then_its_ray_record_is_deleted(
        service: Service, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.launcher import JobLauncher, RayJobNotFound
    from jobs.layout import RunLayout
    from jobs.store import Store
    from serve_app.job_records import JobRecords

    make_many(folder, 3)
    task = service.wait_status(service.create(folder), 2, allowed={0, 1})
    run_id = task["ray_job_id"]
    launcher = JobLauncher(service.dashboard_url)
    deadline = time.monotonic() + 30  # the runner records the outcome just before its process (the job) ends
    while not launcher.state(run_id).is_terminal():
        assert time.monotonic() < deadline, launcher.state(run_id)
        time.sleep(0.1)
    every_job = launcher.states

    def running_ones() -> dict:
        # This test's run and a stand-in for one still running; other tests' records stay in Ray.
        from jobs.launcher import RayJobState

        return {run_id: every_job()[run_id],
                "rayproc-stillRunning-r1-000000": RayJobState("RUNNING", task_id=task["task_id"])}

    monkeypatch.setattr(launcher, "states", running_ones)
    deleted: list[str] = []
    real_delete = launcher.delete
    monkeypatch.setattr(launcher, "delete", lambda rid: deleted.append(rid) or real_delete(rid))
    # The service's own pass (every archive_interval_seconds) may have kept the log already; it deletes nothing
    # within a day.
    kept_now, deleted_now = JobRecords(Store(service.settings.db_path), launcher, retention_seconds=3600).tidy()
    assert kept_now in (0, 1) and deleted_now == 0
    kept = RunLayout(task["work_path"]["output_path"]).run_log(run_id)
    assert "finished: completed" in kept.read_text()
    assert JobRecords(Store(service.settings.db_path), launcher, retention_seconds=0).tidy() == (0, 1)
    assert deleted == [run_id]  # never the one that has not ended
    with pytest.raises(RayJobNotFound):
        launcher.state(run_id)
    r = service.client.get(f"{service.tasks()}/{task['task_id']}/logs")
    assert r.status_code == 200 and r.text == kept.read_text()


def test_job_drivers_are_told_their_own_clusters_address(service: Service, folder: Path) -> None:
    import ray
    from ray.job_submission import JobSubmissionClient

    make_many(folder, 6)
    task = service.wait_status(service.create(folder, execution={"chunk_size": 2}), 2, allowed={0, 1})
    gcs_address = ray.get_runtime_context().gcs_address
    entrypoint = JobSubmissionClient(service.dashboard_url).get_job_info(task["ray_job_id"]).entrypoint
    # Several chunks: the driver joined the cluster at that address to run them.
    assert f"--ray-address {gcs_address}" in entrypoint, entrypoint
    assert task["processed_count"] == 6
