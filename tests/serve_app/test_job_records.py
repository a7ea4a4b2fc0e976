"""Keeping ended runs' logs and deleting their Ray records: the rules, on a real database and real files, with a
stand-in for Ray's job client (the real Jobs API is exercised in test_ray_faults)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from jobs.launcher import METADATA_KEY, JobLauncher
from jobs.layout import RunLayout
from jobs.store import Store
from serve_app.job_records import MAX_KEPT_LOG_BYTES, JobRecords, kept_log

HOUR_MS = 3_600_000
NOW = 100 * HOUR_MS


class _Jobs:
    """Ray's job client over a fixed job list; records what was deleted."""

    jobs: list = []
    logs: dict[str, str] = {}
    deleted: list[str] = []
    asked: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        pass

    def list_jobs(self) -> list:
        return type(self).jobs

    def get_job_logs(self, job_id: str) -> str:
        type(self).asked.append(job_id)
        return type(self).logs[job_id]

    def delete_job(self, job_id: str) -> bool:
        type(self).deleted.append(job_id)
        return True


def _job(run_id: str, task_id: str, status: str, end_time: int | None) -> SimpleNamespace:
    return SimpleNamespace(submission_id=run_id, status=SimpleNamespace(value=status), message=None,
                           end_time=end_time, metadata={METADATA_KEY: task_id})


def _task(store: Store, tmp_path: Path, task_id: str) -> Path:
    out = tmp_path / "work" / task_id
    store.insert_task({
        "task_id": task_id, "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(tmp_path), "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {"id": "sys_data_analyse"},
        "work_path": {}, "input_root": str(tmp_path), "output_dir": str(out), "execution": {"chunk_size": 8},
        "current_run": f"{task_id}-r1",
    })
    return out


def test_logs_are_kept_first_and_only_ended_records_past_the_retention_are_deleted(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    out = _task(store, tmp_path, "t1")
    _Jobs.jobs = [
        _job("old", "t1", "SUCCEEDED", NOW - 2 * HOUR_MS),
        _job("recent", "t1", "FAILED", NOW - HOUR_MS // 2),
        _job("running", "t1", "RUNNING", None),
        _job("no-end-time", "t1", "STOPPED", None),
        _job("task-deleted", "gone", "SUCCEEDED", NOW - 2 * HOUR_MS),
    ]
    _Jobs.logs = {"old": "old log\n", "recent": "x" * (MAX_KEPT_LOG_BYTES + 10) + "the end\n",
                  "no-end-time": "stopped\n"}
    _Jobs.deleted, _Jobs.asked = [], []
    records = JobRecords(store, JobLauncher("http://ray", client_factory=_Jobs), retention_seconds=3600,
                         clock=lambda: NOW)
    assert records.tidy() == (3, 1)
    assert _Jobs.deleted == ["old"]
    assert kept_log(out, "old") == "old log\n"
    recent = kept_log(out, "recent")
    assert recent.endswith("the end\n") and len(recent.encode()) < MAX_KEPT_LOG_BYTES + 100
    assert "not kept" in recent.splitlines()[0]  # says its start was cut
    assert kept_log(out, "running") is None and not RunLayout(out).run_log("running").exists()

    _Jobs.jobs = _Jobs.jobs[1:]  # Ray no longer lists the deleted record
    _Jobs.asked = []
    assert records.tidy() == (0, 0)
    assert _Jobs.asked == [] and _Jobs.deleted == ["old"]  # each log is fetched once; nothing else is due
