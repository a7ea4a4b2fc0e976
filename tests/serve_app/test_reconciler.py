"""The reconciler's rules, on a real database, with its clock in the test's hands (no sleeps).

Ray's side is its job client seen through the real ``JobLauncher``, standing in for a cluster whose jobs
are in a known state; the lifecycle tests run the same rules against the real cluster.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.launcher import JobLauncher, new_run_id
from jobs.status import TaskStatus
from jobs.store import Store
from serve_app.reconciler import FRESH_PROGRESS_MS, UNSUBMITTED_GRACE_MS, Reconciler
from tests.support.clock import Clock


class JobClient:
    """Ray's job client for a cluster where every job is in ``status``; counts the questions."""

    status = "FAILED"
    asked = 0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def get_job_info(self, job_id: str):
        type(self).asked += 1
        return SimpleNamespace(status=SimpleNamespace(value=self.status), message="exited with code 137")


@pytest.fixture
def world(tmp_path: Path):
    JobClient.status, JobClient.asked = "FAILED", 0
    clock = Clock(1_700_000_000_000)
    store = Store(tmp_path / "rayproc.db", clock=clock)
    reconciler = Reconciler(store, JobLauncher("http://ray", client_factory=JobClient), interval_seconds=60,
                            clock=clock)
    return store, reconciler, clock


def _task(store: Store, *, submitted: bool = True, claimed: bool = True) -> str:
    task_id = "reconciledTask012345"
    run_id = new_run_id(task_id, 1)
    store.insert_task({
        "task_id": task_id, "project_id": "p1", "workspace_id": "0", "name": "t", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": "/in", "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {}, "work_path": {},
        "input_root": "/in", "output_dir": "/out", "execution": {}, "current_run": run_id,
    })
    if submitted:
        store.mark_submitted(run_id)
    else:  # a dispatcher took it from the queue and is submitting it
        assert store.claim_queued(max_running=1, max_per_project=None).run_id == run_id
    if claimed:
        store.claim_run(task_id, run_id)
    return task_id


def test_a_reporting_runner_is_not_asked_about_until_its_progress_is_a_second_old(world) -> None:
    store, reconciler, clock = world
    task_id = _task(store)
    clock.now += FRESH_PROGRESS_MS - 1
    assert not reconciler.settle_if_stale(store.get_task(task_id))
    assert JobClient.asked == 0
    clock.now += 1
    assert reconciler.settle_if_stale(store.get_task(task_id))
    rec = store.get_task(task_id)
    assert JobClient.asked == 1
    assert rec.status == TaskStatus.FAILED and rec.error_type == "job_died" and "137" in rec.error_msg


def test_a_finished_record_is_never_asked_about(world) -> None:
    store, reconciler, clock = world
    task_id = _task(store)
    store.finish_run(task_id, store.get_task(task_id).current_run, TaskStatus.COMPLETED, result={})
    clock.now += 60_000
    assert not reconciler.settle_if_stale(store.get_task(task_id))
    assert JobClient.asked == 0


def test_a_run_never_submitted_fails_only_after_the_grace_period(world) -> None:
    store, reconciler, clock = world
    task_id = _task(store, submitted=False, claimed=False)
    clock.now += UNSUBMITTED_GRACE_MS - 1
    assert not reconciler.reconcile(store.get_task(task_id))  # may still be being submitted
    clock.now += 1
    assert reconciler.reconcile(store.get_task(task_id))
    rec = store.get_task(task_id)
    assert rec.status == TaskStatus.FAILED and "never submitted" in rec.error_msg
    assert JobClient.asked == 0  # Ray has nothing to say about a job it never got


@pytest.mark.parametrize(("ray_status", "stop_requested", "expected"), [
    ("RUNNING", False, TaskStatus.RUNNING),
    ("STOPPED", False, TaskStatus.STOPPED),
    ("FAILED", True, TaskStatus.STOPPED),
    ("SUCCEEDED", False, TaskStatus.FAILED),
], ids=["still-running", "stopped-by-ray", "died-while-stopping", "exited-without-an-outcome"])
def test_settling_follows_rays_view_and_the_stop_flag(world, ray_status, stop_requested, expected) -> None:
    store, reconciler, clock = world
    JobClient.status = ray_status
    task_id = _task(store)
    if stop_requested:
        store.request_stop(task_id)
    assert reconciler.reconcile(store.get_task(task_id)) is (expected != TaskStatus.RUNNING)
    assert store.get_task(task_id).status == expected


class ListingJobClient(JobClient):
    """Also answers Ray's whole job list (every job in ``status``), counting the lists asked for."""

    listed = 0

    def list_jobs(self):
        type(self).listed += 1
        return []


def _queued(store: Store, n: int) -> list[str]:
    ids = []
    for i in range(n):
        task_id = f"queuedTask{i:010d}"
        store.insert_task({
            "task_id": task_id, "project_id": "p1", "workspace_id": "0", "name": "t", "description": "",
            "task_type": "sys_data_analyse", "source_type": "OBS", "source": "/in", "version_id": None,
            "version_name": None, "data_source": None, "inputs": [], "template": {}, "work_path": {},
            "input_root": "/in", "output_dir": "/out", "execution": {}, "current_run": new_run_id(task_id, 1),
        })
        ids.append(task_id)
    return ids


def test_a_pass_asks_ray_only_about_runs_it_holds_one_by_one_while_they_are_few(tmp_path: Path) -> None:
    from serve_app.reconciler import ASK_EACH_UP_TO

    ListingJobClient.status, ListingJobClient.asked, ListingJobClient.listed = "RUNNING", 0, 0
    clock = Clock(1_700_000_000_000)
    store = Store(tmp_path / "rayproc.db", clock=clock)
    reconciler = Reconciler(store, JobLauncher("http://ray", client_factory=ListingJobClient), interval_seconds=60,
                            clock=clock)
    queued = _queued(store, 50)
    assert not reconciler.reconcile_all()
    assert (ListingJobClient.asked, ListingJobClient.listed) == (0, 0)  # a queue, however long, is not Ray's

    running = _task(store)  # one run handed to Ray, beside the 50 queued
    assert not reconciler.reconcile_all()
    assert (ListingJobClient.asked, ListingJobClient.listed) == (1, 0)
    ListingJobClient.status = "FAILED"
    assert reconciler.reconcile_all()
    assert store.get_task(running).status == TaskStatus.FAILED
    assert all(store.get_task(t).status == TaskStatus.INITIALIZED for t in queued)

    for _ in range(ASK_EACH_UP_TO + 1):  # more runs than that in Ray's hands: one list for them all
        assert store.claim_queued(max_running=10_000, max_per_project=None) is not None
    reconciler.reconcile_all()
    assert ListingJobClient.listed == 1


def test_a_run_that_died_is_settled_and_its_retry_queued_in_the_same_step(tmp_path: Path) -> None:
    from jobs.store import Retry

    JobClient.status, JobClient.asked = "FAILED", 0
    clock = Clock(1_700_000_000_000)
    store = Store(tmp_path / "rayproc.db", clock=clock)
    woken: list[str] = []
    plans: list[str] = []

    def plan(task_id: str) -> Retry:
        plans.append(task_id)
        return Retry(("job_died",), 3, run_id=lambda seq: new_run_id(task_id, seq),
                     not_before=lambda attempt: clock.now + 5_000 * attempt)

    reconciler = Reconciler(store, JobLauncher("http://ray", client_factory=JobClient), interval_seconds=60,
                            clock=clock, on_failure=lambda: woken.append("wake"), retry=plan)
    task_id = _task(store)
    died = store.get_task(task_id).current_run
    clock.now += FRESH_PROGRESS_MS
    assert reconciler.settle_if_stale(store.get_task(task_id))
    rec = store.get_task(task_id, with_runs=True)
    # The read after the settle already finds the task queued again, with the failure kept on its run.
    assert rec.status == TaskStatus.INITIALIZED and rec.current_run != died and rec.error_type is None
    assert [(r["run_id"], r["outcome"], r["attempt"]) for r in rec.runs] == [(died, "failed", 1),
                                                                          (rec.current_run, None, 2)]
    assert "137" in rec.runs[0]["message"] and rec.runs[1]["not_before"] == clock.now + 5_000
    assert store.run_phase(rec.current_run)[0] == "queued"
    assert (plans, woken) == ([task_id], ["wake"])
