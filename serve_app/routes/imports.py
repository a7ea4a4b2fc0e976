"""Label Studio-compatible asynchronous import, and datasets with versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from jobs.datasets import DEFAULT_DATASET
from rayproc_contract.ids import ID_PATTERN
from rayproc_contract.models import (
    DatasetDetail,
    DatasetsPublic,
    ImportCreated,
    ImportFolder,
    ImportItem,
    ImportPublic,
    ItemsPublic,
    VersionPublic,
    VersionsPublic,
)
from serve_app import errors as E
from serve_app.auth import Reader, Writer
from serve_app.deps import id_path
from serve_app.idempotency import Answer, KeyHeader, KeysDep, fingerprint
from serve_app.imports import (
    ImportService,
    export_name,
    manifest_lines,
    parse_field_names,
    parse_items_file,
    parse_items_json,
)
from serve_app.routes import label_studio

router = APIRouter(tags=["imports and datasets"])
router.include_router(label_studio.router)


def get_imports(request: Request) -> ImportService:
    return request.app.state.imports


Imports = Annotated[ImportService, Depends(get_imports)]
DatasetId = id_path("dataset")
VersionId = id_path("version")
ImportId = Annotated[str, Path(description="The import's id (a number).",
                               json_schema_extra={"pattern": "^[0-9]{1,18}$"})]
_READ = E.error_responses(400, 401, 404)

#: The import's three bodies, for the document (the route reads the body itself: it takes three shapes).
#: main.py adds the models named here to the document's components.
IMPORT_BODY_MODELS = (ImportItem, ImportFolder)
_IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"anyOf": [
        {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/ImportItem"},
         "description": "The items themselves."},
        {"$ref": "#/components/schemas/ImportFolder"},
    ]}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "string", "format": "binary",
        "description": "A .json (a list of items), .jsonl (an item a line) or .csv (a column a field) file."}}}},
}}}


@router.post("/api/projects/{project_id}/import", status_code=201, response_model=ImportCreated,
             openapi_extra=_IMPORT_BODY, responses=E.error_responses(400, 401, 403, 404, 409, 413, 415, 503, 507))
async def import_items(
    *,
    access: Writer,
    imports: Imports,
    keys: KeysDep,
    request: Request,
    return_task_ids: bool = False,
    commit_to_project: bool = True,
    preannotated_from_fields: Annotated[list[str], Query()] = [],  # noqa: B006
    dataset: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9\-_.]+$")] = DEFAULT_DATASET,
    idempotency_key: KeyHeader = None,
) -> JSONResponse:
    """Import items; answers at once with ``{"import": <id>}`` and runs the import as a Ray job.

    The body is a JSON list of items (``{"image": "/path"}``, ``{"text": "..."}``, optionally with
    ``annotations`` / ``predictions``), or a multipart upload of a JSON, JSON Lines or CSV file (field
    ``file``), or ``{"folder": "/path", "recursive": true, "metadata_sheet": "/path/sheet.csv"}``.
    ``commit_to_project=false`` stages the items until ``POST .../reimport`` commits them;
    ``preannotated_from_fields`` (repeated or comma-separated) turns those data fields into predictions.
    With an ``Idempotency-Key``, a repeat of the same import answers the first answer again.
    """
    project_id = access.project_id
    options = {"dataset": dataset, "return_task_ids": return_task_ids, "commit_to_project": commit_to_project,
               "preannotated_from_fields": parse_field_names(preannotated_from_fields)}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise E.InvalidRequest("multipart import: send the file in a field named 'file'")
        name, raw = upload.filename or "", await upload.read()
        request_print = fingerprint("import", file_name=name, file=raw, **options)

        def create() -> int:
            return imports.create(project_id, items=imports.check_items(parse_items_file(name, raw)), **options)
    else:
        body = parse_items_json(await request.body())
        request_print = fingerprint("import", body=body, **options)

        def create() -> int:
            if isinstance(body, dict) and "folder" in body:
                return imports.create(project_id, folder=imports.folder_spec(body), **options)
            return imports.create(project_id, items=imports.check_items(body), **options)

    # In the thread pool: a create may wait on a repeat in progress, and writes a payload file.
    answer = await run_in_threadpool(keys.run, project_id, idempotency_key, request_print,
                                     lambda: Answer(201, {"import": create()}))
    return answer.response()


@router.get("/api/projects/{project_id}/imports/{import_id}/", response_model=ImportPublic,
            response_model_exclude_unset=True, responses=_READ)
@router.get("/api/projects/{project_id}/imports/{import_id}", response_model=ImportPublic,
            response_model_exclude_unset=True, include_in_schema=False)
def get_import(*, access: Reader, imports: Imports, import_id: ImportId) -> dict:
    """An import's status, counts, per-item failures and (when asked for) the created item ids."""
    return imports.get(access.project_id, import_id)


@router.get("/v2/{project_id}/datasets", response_model=DatasetsPublic, responses=_READ)
def list_datasets(*, access: Reader, imports: Imports) -> dict:
    """The project's datasets with their item counts."""
    datasets = imports.datasets.datasets(access.project_id)
    return {"total": len(datasets), "datasets": datasets}


@router.get("/v2/{project_id}/datasets/{dataset_id}", response_model=DatasetDetail, responses=_READ)
def get_dataset(*, access: Reader, imports: Imports, dataset_id: DatasetId) -> dict:
    """One dataset and its versions."""
    ds = imports.dataset(access.project_id, dataset_id)
    return {**ds, "versions": imports.datasets.versions(dataset_id)}


@router.get("/v2/{project_id}/datasets/{dataset_id}/items", response_model=ItemsPublic, responses=_READ)
def list_items(*, access: Reader, imports: Imports, dataset_id: DatasetId,
               limit: Annotated[int, Query(ge=1, le=100)] = 10,
               offset: Annotated[int, Query(ge=0, le=1_000_000, description="Page index.")] = 0,
               version_id: Annotated[str | None, Query(max_length=100)] = None) -> dict:
    """Items, oldest first, one page at a time; ``version_id`` reads a published version."""
    imports.dataset(access.project_id, dataset_id)
    if version_id:
        imports.version(access.project_id, dataset_id, version_id)
    total, items = imports.datasets.items(dataset_id, limit=limit, page=offset, version_id=version_id)
    return {"total": total, "items": items}


@router.post("/v2/{project_id}/datasets/{dataset_id}/versions", status_code=201, response_model=VersionPublic,
             responses=E.error_responses(400, 401, 403, 404, 409, 503, 507))
def publish_version(*, access: Writer, imports: Imports, dataset_id: DatasetId,
                    version_name: Annotated[str | None, Query(max_length=32, pattern=ID_PATTERN.pattern)] = None,
                    ) -> dict:
    """Freeze the dataset's current items as a version (``V001``, ``V002``, ... unless named)."""
    imports.dataset(access.project_id, dataset_id)
    try:
        return imports.datasets.publish(dataset_id, version_name)
    except ValueError as exc:
        raise E.Conflict(str(exc)) from None


@router.get("/v2/{project_id}/datasets/{dataset_id}/versions", response_model=VersionsPublic, responses=_READ)
def list_versions(*, access: Reader, imports: Imports, dataset_id: DatasetId) -> dict:
    """The dataset's published versions."""
    imports.dataset(access.project_id, dataset_id)
    versions = imports.datasets.versions(dataset_id)
    return {"total": len(versions), "versions": versions}


@router.get("/v2/{project_id}/datasets/{dataset_id}/versions/{version_id}/export", response_class=StreamingResponse,
            responses={200: {"description": "One JSON object a line: an item's image, data, labels and boxes.",
                             "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}, **_READ})
def export_version(*, access: Reader, imports: Imports, dataset_id: DatasetId,
                   version_id: VersionId) -> StreamingResponse:
    """The version as a JSON Lines manifest (image paths, labels, boxes): a task source, or a download."""
    version = imports.version(access.project_id, dataset_id, version_id)
    return StreamingResponse(
        manifest_lines(imports.datasets.iter_items(dataset_id, version_id)), media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{export_name(dataset_id, version)}"'})
