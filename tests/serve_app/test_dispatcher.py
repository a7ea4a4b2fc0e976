"""The dispatcher's rules on a real database: order, limits, claims that never double, retries and their limits.

Ray's side is a job client behind the real ``JobLauncher`` that records what it was given; the queue test in
``test_queue.py`` runs the same rules against the real cluster.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from jobs.launcher import JobLauncher, new_run_id
from jobs.status import ErrorType, TaskStatus
from jobs.store import Store
from serve_app.dispatcher import Dispatcher
from serve_app.metrics import METRICS
from serve_app.settings import Settings
from serve_app.submission import RunSubmitter
from tests.support.clock import Clock


class JobClient:
    """Ray's job client: records each submission; ``refuse`` makes it fail as an unreachable cluster does."""

    submitted: list[str] = []
    refuse = False
    delay = 0.0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit_job(self, *, entrypoint: str, submission_id: str, metadata: dict, runtime_env: dict) -> str:
        if type(self).refuse:
            raise ConnectionError("connection refused")
        time.sleep(type(self).delay)
        type(self).submitted.append(submission_id)
        return submission_id


@pytest.fixture
def world(tmp_path: Path):
    JobClient.submitted, JobClient.refuse, JobClient.delay = [], False, 0.0
    clock = Clock(1_700_000_000_000)
    store = Store(tmp_path / "rayproc.db", clock=clock)

    def dispatcher(**limits) -> Dispatcher:
        settings = Settings(data_dir=tmp_path, **{"retry_backoff_seconds": 5, **limits}).resolved()
        launcher = JobLauncher("http://ray", client_factory=JobClient, submit_retry_seconds=0)
        return Dispatcher(settings, store, RunSubmitter(settings, store, launcher), cpus=lambda: 3, clock=clock)

    return store, dispatcher, clock


def _create(store: Store, clock: Clock, task_id: str, *, project: str = "p1", priority: int = 0) -> str:
    clock.now += 1  # submission order
    store.insert_task({
        "task_id": task_id, "project_id": project, "workspace_id": "0", "name": task_id, "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": f"/in/{task_id}", "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {}, "work_path": {},
        "input_root": "/in", "output_dir": "/out", "execution": {}, "current_run": new_run_id(task_id, 1),
        "priority": priority,
    })
    return task_id


def _task_of(run_id: str) -> str:
    return run_id.split("-")[1]


def _finish(store: Store, task_id: str, status: TaskStatus = TaskStatus.COMPLETED, **kw) -> None:
    run_id = store.get_task(task_id).current_run
    store.claim_run(task_id, run_id)
    store.finish_run(task_id, run_id, status, **kw)


def test_queued_runs_start_by_priority_then_in_submission_order_within_the_limit(world) -> None:
    store, dispatcher, clock = world
    for name, priority in [("low1", 0), ("high1", 5), ("low2", 0), ("high2", 5), ("mid1", 1)]:
        _create(store, clock, name, priority=priority)
    d = dispatcher(max_running_tasks=2)
    positions = store.queue_positions(store.get_task(t).current_run for t in ("high1", "high2", "mid1", "low1"))
    assert sorted(positions.values()) == [1, 2, 3, 4]
    assert positions[store.get_task("mid1").current_run] == 3

    assert d.dispatch() == 2
    assert [_task_of(r) for r in JobClient.submitted] == ["high1", "high2"]
    assert d.dispatch() == 0 and store.running_counts()[0] == 2  # full: nothing more starts
    _finish(store, "high1")
    assert d.dispatch() == 1
    _finish(store, "high2")
    _finish(store, "mid1")
    assert d.dispatch() == 2
    assert [_task_of(r) for r in JobClient.submitted] == ["high1", "high2", "mid1", "low1", "low2"]


def test_the_per_project_limit_lets_other_projects_pass(world) -> None:
    store, dispatcher, clock = world
    for name, project in [("a1", "pa"), ("a2", "pa"), ("a3", "pa"), ("b1", "pb")]:
        _create(store, clock, name, project=project)
    assert dispatcher(max_running_tasks=10, max_running_per_project=2).dispatch() == 3
    assert [_task_of(r) for r in JobClient.submitted] == ["a1", "a2", "b1"]
    assert store.running_counts() == (3, {"pa": 2, "pb": 1})


def test_the_default_limit_is_the_clusters_cpu_count(world) -> None:
    store, dispatcher, clock = world
    for i in range(5):
        _create(store, clock, f"t{i}")
    d = dispatcher()
    assert d.max_running() == 3 and d.dispatch() == 3


def test_two_dispatchers_never_submit_one_run_twice_nor_pass_the_limit_together(world) -> None:
    store, dispatcher, clock = world
    for i in range(12):
        _create(store, clock, f"t{i:02d}")
    JobClient.delay = 0.01
    dispatchers = [dispatcher(max_running_tasks=8) for _ in range(4)]
    threads = [threading.Thread(target=d.dispatch) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(JobClient.submitted) == len(set(JobClient.submitted)) == 8
    assert store.running_counts()[0] == 8


def test_a_submission_ray_refuses_waits_in_the_queue_under_a_fresh_run_id(world) -> None:
    store, dispatcher, clock = world
    _create(store, clock, "t1")
    first = store.get_task("t1").current_run
    d = dispatcher(max_running_tasks=2)
    JobClient.refuse = True
    assert d.dispatch() == 0
    rec = store.get_task("t1", with_runs=True)
    assert rec.status == TaskStatus.INITIALIZED and rec.current_run != first
    assert [r["run_id"] for r in rec.runs] == [rec.current_run]
    assert store.run_phase(rec.current_run)[0] == "queued"
    JobClient.refuse = False
    assert d.dispatch() == 1 and JobClient.submitted == [rec.current_run]
    assert store.run_phase(rec.current_run)[0] == "submitted"


def test_a_stopped_or_deleted_queued_task_never_starts(world) -> None:
    store, dispatcher, clock = world
    _create(store, clock, "gone")
    _create(store, clock, "halted")
    _create(store, clock, "runs")
    assert store.delete_task("gone")
    assert store.stop_if_not_started("halted")
    assert dispatcher(max_running_tasks=5).dispatch() == 1
    assert [_task_of(r) for r in JobClient.submitted] == ["runs"]
    assert not store.delete_task("runs")  # handed to Ray: it must be stopped first


def test_infrastructure_failures_are_retried_after_a_backoff_up_to_the_attempt_limit(world) -> None:
    store, dispatcher, clock = world
    _create(store, clock, "t1")
    d = dispatcher(max_running_tasks=2, max_run_attempts=3)
    for attempt, wait_ms in [(1, 5_000), (2, 10_000)]:
        assert d.dispatch() == 1
        _finish(store, "t1", TaskStatus.FAILED, error_type=ErrorType.JOB_DIED.value, error_msg="driver killed")
        retried = METRICS.registry.get_sample_value("rayproc_runs_retried_total")
        assert d.retry_failed() == 1
        assert METRICS.registry.get_sample_value("rayproc_runs_retried_total") == retried + 1
        rec = store.get_task("t1", with_runs=True)
        assert rec.status == TaskStatus.INITIALIZED and rec.error_type is None
        assert [r["attempt"] for r in rec.runs] == list(range(1, attempt + 2))
        assert rec.runs[-2]["outcome"] == "failed" and rec.runs[-2]["message"] == "driver killed"
        clock.now += wait_ms - 1
        assert d.dispatch() == 0  # its backoff has not passed
        clock.now += 1
    assert d.dispatch() == 1
    _finish(store, "t1", TaskStatus.FAILED, error_type=ErrorType.CLUSTER_ERROR.value, error_msg="node lost")
    assert d.retry_failed() == 0  # three runs in all: it stays failed
    rec = store.get_task("t1", with_runs=True)
    assert rec.status == TaskStatus.FAILED and rec.error_type == "cluster_error" and len(rec.runs) == 3


@pytest.mark.parametrize("error_type", ["input_not_found", "no_items", "path_not_allowed", "operator_error",
                                        "output_error", "internal_error"])
def test_failures_of_the_input_or_parameters_are_never_retried(world, error_type: str) -> None:
    store, dispatcher, clock = world
    _create(store, clock, "t1")
    d = dispatcher(max_running_tasks=2)
    d.dispatch()
    _finish(store, "t1", TaskStatus.FAILED, error_type=error_type, error_msg="bad input")
    clock.now += 3_600_000
    assert d.retry_failed() == 0 and d.dispatch() == 0
    assert store.get_task("t1").status == TaskStatus.FAILED


def test_a_task_stopped_while_its_run_died_is_never_resumed_by_itself(world) -> None:
    store, dispatcher, clock = world
    _create(store, clock, "t1")
    d = dispatcher(max_running_tasks=2)
    d.dispatch()
    run_id = store.get_task("t1").current_run
    store.claim_run("t1", run_id)
    store.request_stop("t1")
    store.finish_run("t1", run_id, TaskStatus.FAILED, error_type="job_died", error_msg="killed")
    assert d.retry_failed() == 0
    assert store.get_task("t1").status == TaskStatus.FAILED and len(JobClient.submitted) == 1


def test_backoff_doubles_and_is_capped(world) -> None:
    _, dispatcher, _ = world
    d = dispatcher(retry_backoff_seconds=2, retry_backoff_max_seconds=7)
    assert [d.backoff_ms(a) for a in (1, 2, 3, 4)] == [2_000, 4_000, 7_000, 7_000]
