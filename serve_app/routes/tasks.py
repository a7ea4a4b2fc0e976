"""Processor tasks: ``/v2/{project_id}/processor-tasks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, StreamingResponse

from jobs.layout import RunLayout
from jobs.status import TaskStatus
from rayproc_contract.query import ListQuery
from serve_app import errors as E
from serve_app.auth import Reader, Writer
from serve_app.deps import ServiceDep
from serve_app.idempotency import Answer, KeyHeader, KeysDep, fingerprint
from serve_app.schemas import (
    ErrorBody,
    ProcessorTaskCreate,
    ProcessorTaskPublic,
    ProcessorTasksPublic,
    TaskCreated,
)
from serve_app.views import task_view

router = APIRouter(prefix="/v2/{project_id}/processor-tasks", tags=["processor-tasks"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 500, 503)}


@router.post("", response_model=TaskCreated, responses=_ERRORS)
def create_task(*, access: Writer, body: ProcessorTaskCreate, service: ServiceDep, keys: KeysDep,
                idempotency_key: KeyHeader = None) -> Response:
    """Create a processing task. Answers at once with its ``task_id``; the work runs as a Ray job.

    With an ``Idempotency-Key``, a repeat of the same create answers the first answer again."""
    def create() -> Answer:
        return Answer(200, {"task_id": service.create(access.project_id, body).task_id})

    request = fingerprint("processor-tasks", body=body.model_dump(mode="json", exclude_unset=True))
    return keys.run(access.project_id, idempotency_key, request, create).response()


@router.get("", response_model=ProcessorTasksPublic, response_model_exclude_unset=True, responses=_ERRORS)
def list_tasks(*, access: Reader, service: ServiceDep, query: Annotated[ListQuery, Query()]) -> dict:
    """List tasks, one page at a time, with ModelArts' filters."""
    query.check_version_ids()
    count, records = service.list(access.project_id, query)
    return {"count": count, "tasks": [task_view(r, return_result=query.return_result) for r in records]}


# `{task_id:path}` so that an empty id or one holding '/' reaches the id rules and gets their 400.
# The report and logs routes come first: the plain GET would otherwise take "<id>/report" as an id.


@router.get("/{task_id:path}/report", response_class=HTMLResponse, responses=_ERRORS)
def task_report(*, access: Reader, task_id: str, service: ServiceDep) -> HTMLResponse:
    """A completed task's report (analysis, cleaning, validation, selection): one self-contained HTML page."""
    return HTMLResponse(service.report(access.project_id, task_id))


@router.get("/{task_id:path}/files/{name}", response_class=FileResponse, responses=_ERRORS)
def task_file(*, access: Reader, task_id: str, name: str, service: ServiceDep) -> FileResponse:
    """One output file of a completed task (``features.jsonl``, ``issues.jsonl``, ``failures.jsonl``, ...):
    only the files its ``result.outputs`` lists, by their bare name."""
    rec = service.get(access.project_id, task_id)
    listed = set(((rec.result or {}).get("outputs") or {}).values()) if rec.status == TaskStatus.COMPLETED else set()
    path = RunLayout(rec.output_dir).output(name)
    # Only a listed bare name is served, so no '..', '/' or other file of the folder is ever reachable.
    if name not in listed or "/" in name or name in ("", ".", "..") or not path.is_file():
        raise E.NotFound(f"task {task_id} has no output file {name!r}")
    media = "application/json" if name.endswith(".json") else "application/x-ndjson"
    return FileResponse(path, media_type=media, filename=name, content_disposition_type="inline")


@router.get("/{task_id:path}/logs", response_class=PlainTextResponse, responses=_ERRORS)
def task_logs(*, access: Reader, task_id: str, service: ServiceDep,
              run: Annotated[int | None, Query(ge=1, description="Run number (default: the current run).")] = None,
              follow: Annotated[bool, Query(description="Stream the log as it grows (chunked text/plain) until "
                                                        "the run ends, or the stream's time or size bound.")] = False,
              ) -> Response:
    """The job runner's log of a run: kept under the work path once the run ended, else from Ray.

    With ``follow=true`` the answer streams: a queued run is waited for, a running one is followed, and the
    stream ends when the run ends (or at the service's bounds, with a last line saying so)."""
    if follow:
        return StreamingResponse(service.follow_logs(access.project_id, task_id, run),
                                 media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store",
                                                                                  "X-Accel-Buffering": "no"})
    return PlainTextResponse(service.logs(access.project_id, task_id, run))


@router.get("/{task_id:path}", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
            responses=_ERRORS)
def get_task(*, access: Reader, task_id: str, service: ServiceDep,
             return_result: bool = True) -> dict:
    """One task with its progress, result (when completed) and the Ray job ids of its runs."""
    return task_view(service.get(access.project_id, task_id), return_result=return_result)


@router.post("/{task_id:path}/stop", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             responses=_ERRORS)
def stop_task(*, access: Writer, task_id: str, service: ServiceDep) -> dict:
    """Stop a task. Chunks in flight finish and are kept; the task then reaches status 4."""
    return task_view(service.stop(access.project_id, task_id))


@router.post("/{task_id:path}/resume", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             responses=_ERRORS)
def resume_task(*, access: Writer, task_id: str, service: ServiceDep) -> dict:
    """Resume a stopped or failed task as a new Ray job; committed items are not processed again."""
    return task_view(service.resume(access.project_id, task_id))


@router.delete("/{task_id:path}", status_code=204, responses=_ERRORS)
def delete_task(*, access: Writer, task_id: str, service: ServiceDep) -> Response:
    """Delete a finished task's record (its output files stay where they are)."""
    service.delete(access.project_id, task_id)
    return Response(status_code=204)
