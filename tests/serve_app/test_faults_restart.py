"""Faults that take the service, or the Ray under it, away mid-run: a task they interrupt heals by itself once
``rayproc serve`` is started again, and its outputs equal, row for row, those of the same task run without a fault.

- ``rayproc serve`` with its embedded local Ray (no ``--ray-address``) stopped and started again: stopping it stops
  its Ray, and the running task's driver with it;
- the Ray head under ``rayproc serve --ray-address`` killed and started again at the same address: its in-memory GCS
  comes back empty (no record of the interrupted run's job), and ``rayproc serve`` exits 3 for a supervisor to
  start it again.

Each runs Ray and the service in processes of their own (the test session holds its own Ray connection) and kills
only processes it started.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from jobs.launcher import DRIVER_NICENESS
from serve_app.cli import EXIT_RAY_LOST
from tests.support.cluster import agent_port_taken, free_port
from tests.support.images import make_many
from tests.support.processes import pids_with
from tests.support.serve_process import (
    RayHead,
    ServeProcess,
    assert_matches_uninterrupted,
    kill_all,
    probe_template,
    service_env,
    wait_for,
)

pytestmark = pytest.mark.ray

N = 12
DELAY = 0.3
#: Items that may be redone: the chunks (of one item) in flight at the fault: two per cluster CPU, and one in the
#: driver. The embedded Ray has this machine's CPUs; the test's own head has one.
EMBEDDED_IN_FLIGHT = 2 * (os.cpu_count() or 1) + 1
HEAD_IN_FLIGHT = 2 * 1 + 1


def _interrupted(serve: ServeProcess, folder: Path, log: Path, **hold) -> dict:
    task_id = serve.create(folder, probe_template(log, DELAY, **hold), chunk_size=1)
    return serve.wait(task_id, lambda t: t["status"] == 1 and t["processed_count"] >= 2, allowed={0, 1})


def _driver_gone(run_id: str) -> bool:
    return not pids_with(f"--run-id {run_id}", "jobs.runner")


@pytest.mark.skipif(agent_port_taken(), reason="another Ray instance on this machine holds Ray's agent port")
def test_a_restart_of_rayproc_serve_with_its_embedded_ray_heals_the_task_it_interrupted(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    make_many(folder, N)
    log = tmp_path / "work.log"
    ray_tmp = tempfile.mkdtemp(prefix="rpemb")  # short (Ray's socket paths); every process of its Ray names it
    env = {**service_env(tmp_path), "RAYPROC_DASHBOARD_PORT": str(free_port()), "RAY_TMPDIR": ray_tmp}
    serve = ServeProcess(tmp_path, free_port(), env)
    try:
        serve.start()
        # After two items the probe holds every item until ``release`` exists: a graceful stop of the service
        # takes seconds, and the run must still be going when its Ray stops, however fast the machine is.
        release = tmp_path / "release"
        task = _interrupted(serve, folder, log, release_file=str(release), hold_after=2)
        driver = pids_with(f"--run-id {task['ray_job_id']}", "jobs.runner")
        assert len(driver) == 1 and os.getpriority(os.PRIO_PROCESS, driver[0]) == DRIVER_NICENESS  # below the API
        assert serve.stop(signal.SIGTERM) == 0, serve.err_path.read_text()[-3000:]  # Ray stops with it
        wait_for(lambda: _driver_gone(task["ray_job_id"]), 60, "the driver to end with its Ray")
        kill_all(ray_tmp)  # anything of the old Ray left behind (none is expected)
        from jobs.store import Store

        # Mid-run: left running (the driver was killed with its Ray) or failed for an infrastructure reason (the
        # driver saw its raylet go and recorded it); never completed, or the test would mean nothing.
        interrupted = Store(tmp_path / "data" / "rayproc.db").get_task(task["task_id"])
        assert interrupted.status == 1 or (interrupted.status == 3 and interrupted.error_type in (
            "cluster_error", "job_died", "ray_unavailable")), (interrupted.status, interrupted.error_type)
        release.touch()
        serve.start()  # a new embedded Ray, which never heard of the interrupted run
        healed = serve.wait(task["task_id"], lambda t: t["status"] == 2, allowed={0, 1, 2, 3})
        runs = healed["runs"]
        assert runs[0]["run_id"] == task["ray_job_id"] and runs[0]["outcome"] == "failed", runs
        assert runs[-1]["outcome"] == "completed" and runs[-1]["attempt"] == len(runs) >= 2, runs
        assert (healed["processed_count"], healed["failed_count"]) == (N, 0)
        assert_matches_uninterrupted(serve, healed, folder, tmp_path, log, N, EMBEDDED_IN_FLIGHT, chunk_size=1)
    finally:
        serve.stop(signal.SIGTERM)
        kill_all(ray_tmp)


def test_a_new_rayproc_serve_on_a_restarted_ray_head_heals_the_task_it_interrupted(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    make_many(folder, N)
    log = tmp_path / "work.log"
    head = RayHead()
    # A head started by `ray start` has Ray's token auth on; the token is in ~/.ray/auth_token.
    env = {**service_env(tmp_path), "RAYPROC_DASHBOARD_URL": head.dashboard_url, "RAY_AUTH_MODE": "token"}
    serve = ServeProcess(tmp_path, free_port(), env, "--ray-address", head.gcs_address)
    try:
        head.start()
        serve.start()
        task = _interrupted(serve, folder, log)
        head.kill()
        # The driver ran on the head node: it goes with it, if it did not already.
        kill_all(f"--run-id {task['ray_job_id']}", "jobs.runner")
        assert serve.wait_exit(timeout=60) == EXIT_RAY_LOST, serve.err_path.read_text()[-3000:]
        head.start()  # same address, empty GCS: Ray has no record of the run's job
        serve.start()  # as a supervisor would after exit status 3, on the same database
        healed = serve.wait(task["task_id"], lambda t: t["status"] == 2, allowed={0, 1, 2, 3})
        runs = healed["runs"]
        assert runs[0]["run_id"] == task["ray_job_id"] and runs[0]["outcome"] == "failed", runs
        assert "no record" in runs[0]["reason"] or "without recording" in runs[0]["reason"], runs[0]
        assert runs[-1]["outcome"] == "completed" and runs[-1]["attempt"] == len(runs) >= 2, runs
        assert (healed["processed_count"], healed["failed_count"]) == (N, 0)
        assert_matches_uninterrupted(serve, healed, folder, tmp_path, log, N, HEAD_IN_FLIGHT, chunk_size=1)
    finally:
        serve.kill()
        head.kill()
