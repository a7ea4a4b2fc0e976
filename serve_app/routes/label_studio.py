"""Label Studio's projects, tasks and reimport, over rayproc's projects and imported items.

Code written against label-studio-sdk (``projects.list/get``, ``tasks.list/get``,
``projects.import_tasks`` and the reimport that commits a staged import) runs against
rayproc with a base-URL change. Project isolation is the service's: a project you do
not belong to, and its tasks, answer 404 as if they did not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from rayproc_contract.models import (
    LabelStudioProject,
    LabelStudioProjectPage,
    LabelStudioReimported,
    LabelStudioTask,
    LabelStudioTaskPage,
)
from serve_app import errors as E
from serve_app import label_studio as LS
from serve_app.auth import AccountsDep, Authenticated, ProjectAccess, Reader, Writer, project_access
from serve_app.imports import ImportService, numeric_id

router = APIRouter(tags=["Label Studio"])
#: A Label Studio task id: an imported item's number.
TaskNumber = Annotated[str, Path(description="The task's (imported item's) number.",
                                 json_schema_extra={"pattern": "^[0-9]{1,18}$"})]


def _imports(request: Request) -> ImportService:
    return request.app.state.imports


Imports = Annotated[ImportService, Depends(_imports)]


def _task_project(request: Request, principal: Authenticated,
                  project: Annotated[str, Query(max_length=100, description="Project id (required).")],
                  ) -> ProjectAccess:
    return project_access(project, "read", request, principal)


class Reimport(BaseModel):
    """Label Studio's reimport body: the staged imports (their "file uploads") to commit."""

    model_config = ConfigDict(extra="forbid")

    file_upload_ids: Annotated[list[int], Field(min_length=1, max_length=1000)]
    #: Label Studio reads uploaded files as task lists or one task per file; a staged import is already items.
    files_as_tasks_list: bool = True


@router.get("/api/projects/", response_model=LabelStudioProjectPage, responses=E.error_responses(400, 401, 404))
def list_projects(*, principal: Authenticated, accounts: AccountsDep, imports: Imports, request: Request,
                  page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                  page_size: Annotated[int, Query(ge=1, le=LS.MAX_PROJECT_PAGE_SIZE)] = LS.PROJECT_PAGE_SIZE,
                  ) -> dict:
    """The projects you can see, in Label Studio's page shape ``{count, next, previous, results}``."""
    projects = accounts.projects(principal)
    LS.check_page(page, page_size, len(projects))
    shown = projects[(page - 1) * page_size: page * page_size]
    counts = imports.datasets.project_counts([p["project_id"] for p in shown])
    nxt, prev = LS.page_links(request.url, page, page_size, len(projects))
    return {"count": len(projects), "next": nxt, "previous": prev,
            "results": [LS.project_view(p, counts.get(p["project_id"])) for p in shown]}


@router.get("/api/projects/{project_id}/", response_model=LabelStudioProject,
            responses=E.error_responses(400, 401, 404))
@router.get("/api/projects/{project_id}", include_in_schema=False)
def get_project(*, access: Reader, accounts: AccountsDep, imports: Imports) -> dict:
    """One project with its task, annotation and prediction counts."""
    found = [p for p in accounts.projects(access.principal) if p["project_id"] == access.project_id]
    project = found[0] if found else {"project_id": access.project_id, "name": "", "role": access.role}
    return LS.project_view(project, imports.datasets.project_counts([access.project_id]).get(access.project_id))


@router.post("/api/projects/{project_id}/reimport", status_code=201, response_model=LabelStudioReimported,
             responses=E.error_responses(400, 401, 403, 404, 413, 503, 507))
def reimport(*, access: Writer, imports: Imports, body: Reimport) -> dict:
    """Commit imports made with ``commit_to_project=false`` (their ids are their ``file_upload_ids``)."""
    return imports.commit(access.project_id, body.file_upload_ids)


@router.get("/api/tasks/", response_model=LabelStudioTaskPage, response_model_exclude_unset=True,
            responses=E.error_responses(400, 401, 404))
def list_tasks(*, access: Annotated[ProjectAccess, Depends(_task_project)], imports: Imports,
               page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
               page_size: Annotated[int, Query(ge=1, le=LS.MAX_TASK_PAGE_SIZE)] = LS.TASK_PAGE_SIZE,
               fields: Literal["all", "task_only"] = "task_only") -> dict:
    """The project's tasks (its committed items, every dataset), oldest first, as Label Studio pages them:
    ``{tasks, total, total_annotations, total_predictions}``; ``fields=all`` adds the annotations and
    predictions."""
    totals, items = imports.datasets.project_items(access.project_id, limit=page_size, page=page - 1)
    LS.check_page(page, page_size, totals["total"])
    return {"total": totals["total"], "total_annotations": totals["annotations"],
            "total_predictions": totals["predictions"],
            "tasks": [LS.task_view(i, with_labels=fields == "all") for i in items]}


@router.get("/api/tasks/{task_id}/", response_model=LabelStudioTask, responses=E.error_responses(400, 401, 404))
@router.get("/api/tasks/{task_id}", include_in_schema=False)
def get_task(*, task_id: TaskNumber, principal: Authenticated, imports: Imports, request: Request) -> dict:
    """One task with its data, annotations and predictions."""
    item = imports.datasets.project_item(numeric_id(task_id, "task"))
    try:
        if item is None:
            raise E.NotFound("no such task")
        project_access(item["project_id"], "read", request, principal)
    except E.NotFound:
        # Never name the project of a task the caller may not see.
        raise E.NotFound(f"task {task_id} not found") from None
    return LS.task_view(item)
