"""``Task.wait_till_done`` with a fake clock: it polls on schedule, never busy-loops and never sleeps for real."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from rayproc_client import (
    ErrorEntry,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
)
from rayproc_client.models import TaskInfo
from tests.client.fakes import FakeClock, async_client, sync_client, task_json


def statuses(*values: int, **fields):
    """A service whose task goes through ``values``, one per read, then stays at the last one."""
    script = list(values)

    def handle(request: httpx.Request) -> httpx.Response:
        status = script.pop(0) if len(script) > 1 else script[0]
        return httpx.Response(200, json=task_json("t1", status=status, **fields))

    return handle


def _task(handler, clock: FakeClock) -> tuple[Task, list]:
    client, sent = sync_client(handler, clock)
    task = Task(client, "p1", TaskInfo.model_validate(task_json("t1", status=0)))
    return task, sent.requests


@pytest.mark.parametrize(("timeout", "frequency", "polls", "sleeps"), [
    (10.0, 2.0, 6, [2.0] * 5),
    (5.0, 2.0, 4, [2.0, 2.0, 1.0]),
    (9.0, 3.0, 4, [3.0] * 3),
    (0.0, 2.0, 1, []),
    (1.0, 2.0, 2, [1.0]),
], ids=["10s-every-2", "5s-every-2-last-at-deadline", "9s-every-3", "zero-timeout", "timeout-under-frequency"])
def test_times_out_after_the_right_number_of_polls(timeout: float, frequency: float, polls: int,
                                                   sleeps: list[float]) -> None:
    clock = FakeClock()
    task, requests = _task(statuses(1), clock)
    with pytest.raises(TaskTimeoutError) as caught:
        task.wait_till_done(timeout_seconds=timeout, check_frequency=frequency)
    assert len(requests) == polls
    assert clock.sleeps == sleeps
    assert clock.now == pytest.approx(1000.0 + timeout)  # gave up at the deadline, not after it
    err = caught.value
    assert isinstance(err, TimeoutError) and err.task is task and err.task.status == TaskStatus.RUNNING
    assert "still running" in err.message and err.timeout_seconds == timeout


@pytest.mark.parametrize("frequency", [1.99, 0.0, -2.0, math.nan])
def test_a_check_frequency_under_two_seconds_is_refused_before_any_read(frequency: float) -> None:
    clock = FakeClock()
    task, requests = _task(statuses(2), clock)
    with pytest.raises(ValueError, match="check_frequency must be at least 2"):
        task.wait_till_done(check_frequency=frequency)
    assert requests == [] and clock.sleeps == []


@pytest.mark.parametrize("timeout", [-1.0, math.nan])
def test_a_negative_timeout_is_refused(timeout: float) -> None:
    task, requests = _task(statuses(2), FakeClock())
    with pytest.raises(ValueError, match="timeout_seconds"):
        task.wait_till_done(timeout_seconds=timeout)
    assert requests == []


def test_returns_the_task_once_completed() -> None:
    clock = FakeClock()
    task, requests = _task(statuses(0, 1, 1, 2, completion_percentage=100.0), clock)
    assert task.wait_till_done(timeout_seconds=60, check_frequency=2.5) is task
    assert task.status == TaskStatus.COMPLETED and task.status_name == "completed"
    assert len(requests) == 4 and clock.sleeps == [2.5, 2.5, 2.5]


def test_returns_without_raising_when_the_task_was_stopped() -> None:
    clock = FakeClock()
    task, requests = _task(statuses(1, 4), clock)
    assert task.wait_till_done().status == TaskStatus.STOPPED
    assert len(requests) == 2 and clock.sleeps == [2.0]


def test_an_infinite_timeout_waits_as_long_as_the_task_runs() -> None:
    clock = FakeClock()
    task, requests = _task(statuses(*[1] * 500, 2), clock)
    task.wait_till_done(timeout_seconds=math.inf)
    assert len(requests) == 501 and set(clock.sleeps) == {2.0}


def test_raises_task_failed_with_the_services_reason() -> None:
    clock = FakeClock()
    task, requests = _task(statuses(1, 3, error_type="no_items", error_msg="no image files found in '/d'"), clock)
    with pytest.raises(TaskFailedError) as caught:
        task.wait_till_done()
    err = caught.value
    assert (err.error_type, err.error_msg) == ("no_items", "no image files found in '/d'")
    assert err.task is task and task.status == TaskStatus.FAILED and len(requests) == 2
    assert "failed (no_items)" in str(err)
    assert task.errors == [ErrorEntry(None, "no_items", "no image files found in '/d'")]


def test_a_tasks_own_clock_and_sleep_win_over_the_clients() -> None:
    client_clock, task_clock = FakeClock(), FakeClock(now=0.0)
    client, _ = sync_client(statuses(1), client_clock)
    task = Task(client, "p1", TaskInfo.model_validate(task_json("t1")), clock=task_clock, sleep=task_clock.sleep)
    with pytest.raises(TaskTimeoutError):
        task.wait_till_done(timeout_seconds=4)
    assert (client_clock.sleeps, task_clock.sleeps) == ([], [2.0, 2.0])


def test_the_async_task_waits_on_the_same_schedule() -> None:
    clock = FakeClock()
    client, sent = async_client(statuses(1), clock)

    async def wait() -> None:
        task = await client.get_task("p1", "t1")
        await task.wait_till_done(timeout_seconds=5)

    with pytest.raises(TaskTimeoutError):
        asyncio.run(wait())
    assert len(sent.requests) == 1 + 4 and clock.sleeps == [2.0, 2.0, 1.0]

    done_clock = FakeClock()
    done_client, _ = async_client(statuses(1, 2), done_clock)

    async def done() -> int:
        task = await done_client.get_task("p1", "t1")
        return (await task.wait_till_done()).status

    assert asyncio.run(done()) == TaskStatus.COMPLETED


# ----- what a task shows ------------------------------------------------------------------------------


def test_a_completed_task_maps_labelbox_attributes_onto_rayproc_fields() -> None:
    failed_items = [{"item": "text.jpg", "error_code": "not_an_image", "error_msg": "cannot identify image"},
                    {"item": "cut.png", "error_code": "truncated", "error_msg": "image file is truncated"}]
    info = TaskInfo.model_validate(task_json(
        "t9", status=2, completion_percentage=100.0, processed_count=5, failed_count=2, total_count=7,
        result={"item_count": 7, "failed_items": failed_items}, future_field="kept"))
    client, _ = sync_client(statuses(2))
    task = Task(client, "p1", info)
    assert (task.uid, task.status, task.status_name, task.completion_percentage) == ("t9", 2, "completed", 100.0)
    assert (task.created_data_rows, task.failed_data_rows) == (5, 2)
    assert task.errors == [ErrorEntry("text.jpg", "not_an_image", "cannot identify image"),
                           ErrorEntry("cut.png", "truncated", "image file is truncated")]
    assert task.result is not None and task.result["item_count"] == 7
    assert task.info.model_extra == {"future_field": "kept"}
    assert repr(task) == "<Task t9 'name-t9' in p1: completed, 100%>"


def test_a_running_task_has_no_errors_and_an_unknown_status_is_named() -> None:
    client, _ = sync_client(statuses(1))
    assert Task(client, "p1", TaskInfo.model_validate(task_json(status=1))).errors == []
    assert Task(client, "p1", TaskInfo.model_validate(task_json(status=9))).status_name == "unknown (9)"


def test_a_task_waiting_in_the_queue_is_named_queued() -> None:
    client, _ = sync_client(statuses(0))
    assert Task(client, "p1", TaskInfo.model_validate(task_json(status=0, queue_position=3))).status_name == "queued"
    assert Task(client, "p1", TaskInfo.model_validate(task_json(status=0))).status_name == "initialized"
    assert Task(client, "p1", TaskInfo.model_validate(task_json(status=0, queue_position=None))).status_name == (
        "initialized")  # handed to Ray, not running yet
