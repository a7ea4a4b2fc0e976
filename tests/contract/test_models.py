"""The public task, read two ways: the service's model answers every field, the client's reading of it tolerates
missing and unknown fields. The reading is derived, so the two cannot drift apart."""

from __future__ import annotations

import pydantic
import pytest

from rayproc_contract.models import ProcessorTaskPublic, ProcessorTasksPublic, TaskInfo, TaskPage

MINIMAL = {"task_id": "t1", "name": "first", "status": 1}


def _full() -> dict:
    return {
        "task_id": "t1", "name": "first", "description": "d", "data_source": {"type": "OBS", "source": "/x"},
        "inputs": [{"type": "OBS", "source": "/x"}], "template": {"id": "sys_data_analyse"}, "status": 2,
        "result": {"item_count": 2}, "duration_seconds": 3, "create_time": 1_700_000_000_000, "version_id": None,
        "version_name": None, "version_count": 1, "is_current": True, "work_path": {"path": "/o"},
        "workspace_id": "0", "completion_percentage": 100.0, "total_count": 2, "processed_count": 2,
        "failed_count": 0, "stop_requested": False, "ray_job_id": "r1", "ray_job_ids": ["r1"],
        "priority": 0, "queue_position": None,
        "runs": [{"run_id": "r1", "attempt": 1, "outcome": "completed", "reason": None,
                  "queued_time": 1_700_000_000_000, "start_time": 1_700_000_000_100, "end_time": 1_700_000_003_100,
                  "dashboard_url": "http://127.0.0.1:8265/#/jobs/r1"}],
    }


def test_the_reading_has_the_answers_fields_in_the_answers_order() -> None:
    assert list(TaskInfo.model_fields) == list(ProcessorTaskPublic.model_fields)
    assert list(TaskPage.model_fields) == list(ProcessorTasksPublic.model_fields)


def test_only_the_id_name_and_status_are_required_to_read_a_task() -> None:
    assert [n for n, f in TaskInfo.model_fields.items() if f.is_required()] == ["task_id", "name", "status"]
    info = TaskInfo.model_validate(MINIMAL)
    assert (info.inputs, info.template, info.create_time, info.ray_job_id, info.workspace_id) == (
        [], {}, None, None, "0")


def test_the_service_model_requires_every_field_but_the_status_dependent_ones() -> None:
    optional = [n for n, f in ProcessorTaskPublic.model_fields.items() if not f.is_required()]
    assert optional == ["error_msg", "error_type", "result"]
    ProcessorTaskPublic.model_validate(_full())
    with pytest.raises(pydantic.ValidationError, match="create_time"):
        ProcessorTaskPublic.model_validate({**_full(), "create_time": None})
    with pytest.raises(pydantic.ValidationError, match="ray_job_id"):
        ProcessorTaskPublic.model_validate({k: v for k, v in _full().items() if k != "ray_job_id"})


def test_a_full_answer_reads_back_field_for_field() -> None:
    answer = ProcessorTaskPublic.model_validate(_full()).model_dump(exclude_unset=True)
    assert TaskInfo.model_validate(answer).model_dump(exclude_unset=True) == answer


def test_a_run_is_read_tolerantly_too() -> None:
    info = TaskInfo.model_validate({**MINIMAL, "runs": [{"run_id": "r1"}]})
    assert (info.queue_position, info.priority) == (None, 0)
    assert (info.runs[0].run_id, info.runs[0].attempt, info.runs[0].outcome) == ("r1", 1, None)


def test_the_reading_keeps_unknown_fields_and_is_frozen() -> None:
    info = TaskInfo.model_validate({**MINIMAL, "added_later": {"x": 1}})
    assert info.model_extra == {"added_later": {"x": 1}}
    with pytest.raises(pydantic.ValidationError):
        info.name = "changed"


def test_mutable_defaults_are_fresh_per_reading() -> None:
    first, second = TaskInfo.model_validate(MINIMAL), TaskInfo.model_validate(MINIMAL)
    assert first.inputs == [] and first.inputs is not second.inputs


def test_a_page_reads_its_tasks_tolerantly() -> None:
    page = TaskPage.model_validate({"count": 3, "tasks": [MINIMAL]})
    assert type(page.tasks[0]) is TaskInfo and page.count == 3
