"""Records -> API answers."""

from __future__ import annotations

from jobs.status import TaskStatus
from jobs.store import TaskRecord


def task_view(rec: TaskRecord, *, return_result: bool = True) -> dict:
    view = {
        "task_id": rec.task_id,
        "name": rec.name,
        "description": rec.description,
        "data_source": rec.data_source,
        "inputs": rec.inputs,
        "template": rec.template,
        "status": int(rec.status),
        "duration_seconds": rec.duration_seconds(),
        "create_time": rec.create_time,
        "version_id": rec.version_id,
        "version_name": rec.version_name,
        "version_count": rec.version_count,
        "is_current": rec.is_current,
        "work_path": rec.work_path,
        "workspace_id": rec.workspace_id,
        "completion_percentage": rec.completion_percentage(),
        "total_count": rec.total_count,
        "processed_count": rec.processed_count,
        "failed_count": rec.failed_count,
        "stop_requested": rec.stop_requested,
        "ray_job_id": rec.current_run,
        "ray_job_ids": [r["run_id"] for r in rec.runs],
        "priority": rec.priority,
        "queue_position": rec.queue_position,
        "runs": [run_view(r) for r in rec.runs],
    }
    if rec.status == TaskStatus.FAILED:
        view["error_msg"] = rec.error_msg
        view["error_type"] = rec.error_type
    if rec.status == TaskStatus.COMPLETED and return_result:
        view["result"] = rec.result
    return view


def run_view(run: dict) -> dict:
    """One run (attempt) of a task: why it ended, and when it started and ended (epoch ms)."""
    return {"run_id": run["run_id"], "attempt": run.get("attempt", 1), "outcome": run["outcome"],
            "reason": run["message"], "queued_time": run.get("queued_time"), "start_time": run["start_time"],
            "end_time": run["end_time"], "dashboard_url": run.get("dashboard_url")}
