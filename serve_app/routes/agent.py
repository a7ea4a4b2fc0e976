"""synapse-sdk's agent surface over rayproc's tasks: ``/agent/v1/{project_id}/``.

Give ``AgentClient(base_url="<service>/agent/v1/<project id>", agent_token="Token <rayproc token>")``
and its job calls work unchanged: ``list_jobs``, ``get_job``, ``get_job_logs``,
``tail_job_logs``/``stream_tail_job_logs`` (server-sent events), ``stop_job`` and
``health_check``; ``jobs/{id}/resume/`` resumes a stopped or failed task. A *job* here is a
rayproc task: its id is the task id, its status Ray's vocabulary, and the Ray submission ids
of its runs are in ``ray_job_ids``. Ids follow synapse's rules and messages, in its order;
errors are the processor-task routes' (400 invalid id or already terminal, 404 unknown or
another project's, 503 Ray unreachable), because the same service methods answer them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from jobs import launcher as L
from jobs.status import TaskStatus
from jobs.store import ListQuery, TaskRecord
from rayproc_contract.models import AgentHealth, AgentJob, AgentJobStopped
from serve_app import errors as E
from serve_app.auth import Reader, Writer
from serve_app.deps import ServiceDep, id_path
from serve_app.ray_errors import ray_errors, ray_reachability
from serve_app.service import TaskService

router = APIRouter(prefix="/agent/v1/{project_id}", tags=["synapse agent"])

#: A task's status in Ray's job vocabulary (what synapse's agent reports).
RAY_STATUS = {TaskStatus.INITIALIZED: "PENDING", TaskStatus.RUNNING: "RUNNING", TaskStatus.COMPLETED: "SUCCEEDED",
              TaskStatus.FAILED: "FAILED", TaskStatus.STOPPED: "STOPPED"}
#: A log line longer than this is sent in pieces, so one event never holds an unbounded line.
MAX_EVENT_CHARS = 64 * 1024
_READ = E.error_responses(400, 401, 404)
_RAY_READ = E.error_responses(400, 401, 404, 503)
_WRITE = E.error_responses(400, 401, 403, 404, 409, 503, 507)
JobId = id_path("job (task)")
#: The log routes' answers besides errors, for the document.
_LOG_STREAM = {200: {"description": "Server-sent events, one a log line, then one saying the stream ended.",
                     "content": {"text/event-stream": {"schema": {
                         "type": "object", "required": ["data"], "properties": {
                             "event": {"type": "string"},
                             "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
                                 "type": "object", "required": ["type"], "properties": {
                                     "type": {"enum": ["log", "complete", "error"]},
                                     "message": {"type": "string"}}}}}}}}}}
_LOG_TEXT = {200: {"description": "The log, as one JSON string.",
                   "content": {"application/json": {"schema": {"type": "string"}}}}}


def _job_id(job_id: str) -> str:
    return E.validate_resource_id(job_id, "job")


def job_view(rec: TaskRecord) -> dict:
    """A task in the shape of a Ray job's details, with rayproc's progress beside it."""
    terminal = rec.status.is_terminal()
    return {
        "type": "SUBMISSION",
        "job_id": rec.task_id,
        "submission_id": rec.task_id,
        "status": RAY_STATUS[rec.status],
        "entrypoint": rec.task_type,
        "message": rec.error_msg if rec.status == TaskStatus.FAILED else None,
        "error_type": rec.error_type if rec.status == TaskStatus.FAILED else None,
        "start_time": rec.create_time,
        "end_time": rec.update_time if terminal else None,
        "metadata": {"rayproc_task_id": rec.task_id, "rayproc_project_id": rec.project_id,
                     "rayproc_task_type": rec.task_type, "name": rec.name},
        "task_status": int(rec.status),
        "stop_requested": rec.stop_requested,
        "completion_percentage": rec.completion_percentage(),
        "total_count": rec.total_count,
        "processed_count": rec.processed_count,
        "failed_count": rec.failed_count,
        "ray_job_id": rec.current_run,
        "ray_job_ids": [r["run_id"] for r in rec.runs],
    }


@router.get("/jobs/", response_model=list[AgentJob], responses=_READ)
def list_jobs(*, access: Reader, service: ServiceDep,
              limit: Annotated[int, Query(ge=1, le=100)] = 100,
              offset: Annotated[int, Query(ge=0, le=1_000_000, description="Page index.")] = 0) -> list[dict]:
    """The project's tasks as jobs, newest first (a page of ``limit``; ``offset`` is the page index)."""
    _, records = service.list(access.project_id, ListQuery(limit=limit, page=offset))
    return [job_view(r) for r in records]


@router.get("/jobs/{job_id:path}/logs/stream/", response_class=StreamingResponse,
            responses={**_LOG_STREAM, **_RAY_READ})
async def stream_job_logs(*, access: Reader, service: ServiceDep, job_id: JobId) -> StreamingResponse:
    """The current run's log as server-sent events while it grows: ``data: {"type": "log", "message":
    <line>}`` per line, then ``data: {"type": "complete"}`` when the run ends (``"error"`` if Ray fails)."""
    rec = await run_in_threadpool(service.get, access.project_id, _job_id(job_id))
    # Ask Ray first, so an unreachable cluster or a forgotten run is a status code, not an event.
    await run_in_threadpool(_known_run, service, rec.current_run)
    return StreamingResponse(_events(service.launcher.tail_logs(rec.current_run)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id:path}/logs/", response_class=JSONResponse, responses={**_LOG_TEXT, **_RAY_READ})
def get_job_logs(*, access: Reader, service: ServiceDep, job_id: JobId) -> JSONResponse:
    """The current run's whole log, as one JSON string."""
    return JSONResponse(service.logs(access.project_id, _job_id(job_id), None))


@router.post("/jobs/{job_id:path}/stop/", response_model=AgentJobStopped, responses=_WRITE)
def stop_job(*, access: Writer, service: ServiceDep, job_id: JobId) -> dict:
    """Stop the task (chunks that started finish and are kept); ``stopped`` as Ray's stop answers it."""
    return {**job_view(service.stop(access.project_id, _job_id(job_id))), "stopped": True}


@router.post("/jobs/{job_id:path}/resume/", response_model=AgentJob, responses=_WRITE)
def resume_job(*, access: Writer, service: ServiceDep, job_id: JobId) -> dict:
    """Resume a stopped or failed task as a new Ray job."""
    return job_view(service.resume(access.project_id, _job_id(job_id)))


@router.get("/jobs/{job_id:path}/", response_model=AgentJob, responses=_READ)
def get_job(*, access: Reader, service: ServiceDep, job_id: JobId) -> dict:
    """One task as a job."""
    return job_view(service.get(access.project_id, _job_id(job_id)))


@router.get("/health/", response_model=AgentHealth, responses=_READ)
def health(*, access: Reader, service: ServiceDep) -> dict:
    """The agent answers, and whether the Ray Jobs API does."""
    return {"status": "ok", "ray": ray_reachability(service.launcher)}


def _known_run(service: TaskService, run_id: str) -> None:
    with ray_errors():
        try:
            service.launcher.state(run_id)
        except L.RayJobNotFound:
            raise E.NotFound(f"Ray no longer has the logs of run {run_id}") from None


def _event(kind: str, message: str | None = None) -> bytes:
    body = {"type": kind} if message is None else {"type": kind, "message": message}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


async def _events(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    pending = ""
    try:
        async for chunk in chunks:
            *lines, pending = (pending + chunk).split("\n")
            for line in lines:
                for start in range(0, max(1, len(line)), MAX_EVENT_CHARS):
                    yield _event("log", line[start:start + MAX_EVENT_CHARS])
            while len(pending) > MAX_EVENT_CHARS:
                yield _event("log", pending[:MAX_EVENT_CHARS])
                pending = pending[MAX_EVENT_CHARS:]
    except (L.RayUnavailable, L.RayJobNotFound, L.RayJobError) as exc:
        yield _event("error", f"the log stream from Ray ended early: {exc}")
        return
    if pending:
        yield _event("log", pending)
    yield _event("complete")
