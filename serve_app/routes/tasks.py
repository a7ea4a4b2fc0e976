"""Processor tasks: ``/v2/{project_id}/processor-tasks``.

Every task route also answers with a trailing slash (as the import status route does); those spellings are
left out of the OpenAPI document, which lists each operation once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, StreamingResponse

from jobs.layout import RunLayout
from jobs.status import TaskStatus
from jobs.storage import is_object_uri
from rayproc_contract.models import TaskCreated
from rayproc_contract.query import ListQuery
from serve_app import errors as E
from serve_app.auth import Reader, Writer
from serve_app.deps import ServiceDep, id_path
from serve_app.idempotency import Answer, KeyClaim, KeyHeader, KeysDep, fingerprint
from serve_app.schemas import ProcessorTaskCreate, ProcessorTaskPublic, ProcessorTasksPublic
from serve_app.views import task_view

router = APIRouter(prefix="/v2/{project_id}/processor-tasks", tags=["processor-tasks"])

#: Every route: a bad id, query or body; no token; an unknown task or project.
_READ = (400, 401, 404)
#: Routes that change something: a viewer's role, a full or read-only data directory, Ray away.
_WRITE = (*_READ, 403, 503, 507)
TaskId = id_path("task")


def _task_id(raw: str) -> str:
    """The id from ``{task_id:path}``: one trailing slash is the route's, not the id's. The service checks
    what is left by the id rule (``a/b`` and ``""`` are its 400s)."""
    return raw[:-1] if raw.endswith("/") else raw


@router.post("", response_model=TaskCreated, responses=E.error_responses(*_WRITE, 409, 413))
@router.post("/", response_model=TaskCreated, include_in_schema=False)
def create_task(*, access: Writer, body: ProcessorTaskCreate, service: ServiceDep, keys: KeysDep,
                idempotency_key: KeyHeader = None) -> Response:
    """Create a processing task. Answers at once with its ``task_id``; the work runs as a Ray job.

    With an ``Idempotency-Key``, a repeat of the same create answers the first answer again (409 while the
    first is still in progress, or for the same key with another body)."""
    def answer(task_id: str) -> Answer:
        return Answer(200, {"task_id": task_id})

    def create(claim: KeyClaim | None) -> Answer:
        # The key, the task and the answer commit in the task's one write transaction.
        hold = None if claim is None else (lambda conn, task_id: claim.take(conn, answer(task_id)))
        return answer(service.create(access.project_id, body, within=hold))

    request = fingerprint("processor-tasks", body=body.model_dump(mode="json", exclude_unset=True))
    return keys.run_once(access.project_id, idempotency_key, request, create).response()


@router.get("", response_model=ProcessorTasksPublic, response_model_exclude_unset=True,
            responses=E.error_responses(*_READ))
@router.get("/", response_model=ProcessorTasksPublic, response_model_exclude_unset=True, include_in_schema=False)
def list_tasks(*, access: Reader, service: ServiceDep, query: Annotated[ListQuery, Query()]) -> dict:
    """List tasks, one page at a time, with ModelArts' filters."""
    query.check_version_ids()
    count, records = service.list(access.project_id, query)
    return {"count": count, "tasks": [task_view(r, return_result=query.return_result) for r in records]}


# `{task_id:path}` so that an empty id or one holding '/' reaches the id rules and gets their 400.
# The report and logs routes come first: the plain GET would otherwise take "<id>/report" as an id.


@router.get("/{task_id:path}/report", response_class=HTMLResponse, responses=E.error_responses(*_READ, 503, 507))
@router.get("/{task_id:path}/report/", response_class=HTMLResponse, include_in_schema=False)
def task_report(*, access: Reader, task_id: TaskId, service: ServiceDep) -> HTMLResponse:
    """A completed task's report (analysis, cleaning, validation, selection): one self-contained HTML page.
    Errors are JSON, as everywhere."""
    return HTMLResponse(service.report(access.project_id, task_id))


#: An output file's bare name, as the operators name their outputs (``features.jsonl``, ``kept.jsonl``, ...).
OutputName = Annotated[str, PathParam(description="A file name the task's result.outputs lists.",
                                      json_schema_extra={"pattern": r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$"})]
_FILE_ANSWER = {200: {"description": "The file, as the task wrote it (JSON, or JSON Lines).", "content": {
    "application/x-ndjson": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "string"}}}}}


@router.get("/{task_id:path}/files/{name}", response_class=FileResponse,
            responses={**_FILE_ANSWER, **E.error_responses(*_READ, 503)})
@router.get("/{task_id:path}/files/{name}/", response_class=FileResponse, include_in_schema=False)
def task_file(*, access: Reader, task_id: TaskId, name: OutputName, service: ServiceDep) -> Response:
    """One output file of a completed task (``features.jsonl``, ``issues.jsonl``, ``failures.jsonl``, ...):
    only the files its ``result.outputs`` lists, by their bare name. Errors are JSON, as everywhere."""
    rec = service.get(access.project_id, task_id)
    listed = set(((rec.result or {}).get("outputs") or {}).values()) if rec.status == TaskStatus.COMPLETED else set()
    layout = RunLayout(rec.output_dir)
    path = layout.output(name)
    media = "application/json" if name.endswith(".json") else "application/x-ndjson"
    # Only a listed bare name is served, so no '..', '/' or other file of the folder is ever reachable.
    if name not in listed or "/" in name or name in ("", ".", ".."):
        raise E.NotFound(f"task {task_id} has no output file {name!r}")
    if is_object_uri(rec.output_dir):  # in a bucket: the object's text, through the layout's one reader
        try:
            text = layout.read_output(name)
        except OSError as exc:  # the store's answer names the object, never credentials
            raise E.StorageUnavailable(f"task {task_id}'s output file {name!r} cannot be read: {exc}") from None
        except UnicodeDecodeError:
            raise E.InvalidState(f"task {task_id}'s output file {name!r} is not UTF-8 text") from None
        if text is None:
            raise E.NotFound(f"task {task_id} has no output file {name!r}")
        return Response(text, media_type=media, headers={"Content-Disposition": f'inline; filename="{name}"'})
    if not path.is_file():
        raise E.NotFound(f"task {task_id} has no output file {name!r}")
    return FileResponse(path, media_type=media, filename=name, content_disposition_type="inline")


@router.get("/{task_id:path}/logs", response_class=PlainTextResponse, responses=E.error_responses(*_READ, 503))
@router.get("/{task_id:path}/logs/", response_class=PlainTextResponse, include_in_schema=False)
def task_logs(*, access: Reader, task_id: TaskId, service: ServiceDep,
              run: Annotated[int | None, Query(ge=1, description="Run number (default: the current run).")] = None,
              follow: Annotated[bool, Query(description="Stream the log as it grows (chunked text/plain) until "
                                                        "the run ends, or the stream's time or size bound.")] = False,
              ) -> Response:
    """The job runner's log of a run (plain text): kept under the work path once the run ended, else from Ray.
    Errors are JSON, as everywhere.

    With ``follow=true`` the answer streams: a queued run is waited for, a running one is followed, and the
    stream ends when the run ends (or at the service's bounds, with a last line saying so)."""
    if follow:
        return StreamingResponse(service.follow_logs(access.project_id, task_id, run),
                                 media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store",
                                                                                  "X-Accel-Buffering": "no"})
    return PlainTextResponse(service.logs(access.project_id, task_id, run))


@router.post("/{task_id:path}/stop", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             responses=E.error_responses(*_WRITE))
@router.post("/{task_id:path}/stop/", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             include_in_schema=False)
def stop_task(*, access: Writer, task_id: TaskId, service: ServiceDep) -> dict:
    """Stop a task. Chunks in flight finish and are kept; the task then reaches status 4."""
    return task_view(service.stop(access.project_id, task_id))


@router.post("/{task_id:path}/resume", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             responses=E.error_responses(*_WRITE, 409))
@router.post("/{task_id:path}/resume/", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
             include_in_schema=False)
def resume_task(*, access: Writer, task_id: TaskId, service: ServiceDep) -> dict:
    """Resume a stopped or failed task as a new Ray job; committed items are not processed again."""
    return task_view(service.resume(access.project_id, task_id))


@router.get("/{task_id:path}", response_model=ProcessorTaskPublic, response_model_exclude_unset=True,
            responses=E.error_responses(*_READ))
def get_task(*, access: Reader, task_id: TaskId, service: ServiceDep, return_result: bool = True) -> dict:
    """One task with its progress, result (when completed) and the Ray job ids of its runs."""
    return task_view(service.get(access.project_id, _task_id(task_id)), return_result=return_result)


@router.delete("/{task_id:path}", status_code=204, responses=E.error_responses(*_WRITE, 409))
def delete_task(*, access: Writer, task_id: TaskId, service: ServiceDep) -> Response:
    """Delete a finished task's record (its output files stay where they are); 409 while it is active."""
    service.delete(access.project_id, _task_id(task_id))
    return Response(status_code=204)
