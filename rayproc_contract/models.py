"""The public task: its fields written once, read two ways.

:class:`ProcessorTaskPublic` is the task as the service answers it (ModelArts' ``DescribeProcessorTaskResp`` plus
progress and runs): the service fills every field, and its field order is the order of the answer's keys. A client reads
the same fields tolerantly: a newer service may add fields, and an older one may leave some out. So each field
that a reader may miss says, with :class:`Lenient`, what a reader takes in its place, and :func:`lenient` derives
the reading model from the answering one. :class:`TaskInfo` and :class:`TaskPage` are those reading models.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

__all__ = [
    "Lenient", "ProcessorTaskPublic", "RunInfo", "RunPublic", "ProcessorTasksPublic", "SourceType", "TaskInfo", "TaskPage", "lenient",
    # The other answers, as the service documents them (see "Every other answer" below).
    "AgentHealth", "AgentJob", "AgentJobStopped", "ClusterPublic", "ClusterTaskPublic", "ClusterTasksPublic",
    "DatasetDetail", "DatasetPublic", "DatasetsPublic", "Health", "ImportCreated", "Readiness", "ImportFolder", "ImportItem", "ImportPublic",
    "ItemPublic", "ItemsPublic", "LabelStudioProject", "LabelStudioProjectPage",
    "LabelStudioReimported", "LabelStudioTask", "LabelStudioTaskPage", "MemberSet", "NodePublic", "OperatorInfo", "ProjectCreated", "ProjectPublic", "ProjectsPublic",
    "TaskCreated", "TemplateInfo", "TemplateItem", "TemplateItems", "TemplatesPublic", "TokenIssued", "TokenPublic",
    "TokensPublic", "UserPublic", "UsersPublic", "WhoAmI",
]

#: Where a task's input comes from (``data_source.type``, the list's ``source_type``).
SourceType = Literal["OBS", "DATASET", "TASK", "CUSTOM"]


@dataclass(frozen=True)
class Lenient:
    """Field metadata: what a tolerant reader takes when the answer leaves the field out (``default``, or a fresh
    ``factory()``). A ``None`` default also lets the reader accept ``null``."""

    default: Any = None
    factory: Callable[[], Any] | None = None


class RunPublic(BaseModel):
    """One run of a task (the first, a resume, or an automatic retry after an infrastructure failure)."""

    model_config = ConfigDict(extra="allow")

    run_id: str = Field(description="The run's Ray submission id.")
    attempt: Annotated[int, Lenient(1)] = Field(
        description="1 for a run a person started (create, resume); n for the (n-1)th automatic retry after it.")
    outcome: Annotated[str | None, Lenient(None)] = Field(
        description="completed, failed or stopped; null while the run has not ended.")
    reason: Annotated[str | None, Lenient(None)] = Field(description="Why the run ended, when it says more.")
    queued_time: Annotated[int | None, Lenient(None)] = Field(description="When it was queued (epoch ms).")
    start_time: Annotated[int | None, Lenient(None)] = Field(description="When its runner started (epoch ms).")
    end_time: Annotated[int | None, Lenient(None)] = Field(description="When it ended (epoch ms).")
    dashboard_url: Annotated[str | None, Lenient(None)] = Field(
        description="The run's Ray job in the Ray dashboard (its driver log, its node, its Ray tasks).")


class ProcessorTaskPublic(BaseModel):
    """A task as the API shows it: ModelArts' DescribeProcessorTaskResp plus progress and runs."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    name: str
    description: Annotated[str, Lenient("")]
    data_source: Annotated[dict | None, Lenient(None)]
    inputs: Annotated[list[dict], Lenient(factory=list)]
    template: Annotated[dict, Lenient(factory=dict)]
    status: int = Field(description="0 initialized, 1 running, 2 completed, 3 failed, 4 stopped")
    error_msg: str | None = Field(None, description="Present when status is 3.")
    error_type: str | None = Field(None, description="Failure class, present when status is 3.")
    result: dict | None = Field(None, description="Present when status is 2 (unless return_result=false).")
    duration_seconds: Annotated[int, Lenient(0)]
    create_time: Annotated[int, Lenient(None)] = Field(description="Epoch milliseconds.")
    version_id: Annotated[str | None, Lenient(None)]
    version_name: Annotated[str | None, Lenient(None)]
    version_count: Annotated[int, Lenient(0)]
    is_current: Annotated[bool, Lenient(False)]
    work_path: Annotated[dict, Lenient(factory=dict)]
    workspace_id: Annotated[str, Lenient("0")]
    completion_percentage: Annotated[float, Lenient(0.0)]
    total_count: Annotated[int | None, Lenient(None)]
    processed_count: Annotated[int, Lenient(0)]
    failed_count: Annotated[int, Lenient(0)]
    stop_requested: Annotated[bool, Lenient(False)]
    ray_job_id: Annotated[str, Lenient(None)] = Field(description="Ray submission id of the current run.")
    ray_job_ids: Annotated[list[str], Lenient(factory=list)] = Field(
        description="Ray submission ids of every run, oldest first.")
    priority: Annotated[int, Lenient(0)] = Field(description="Admission priority: higher starts first.")
    queue_position: Annotated[int | None, Lenient(None)] = Field(
        description="1-based place in the admission queue while the task waits for a slot (status 0); else null.")
    runs: Annotated[list[RunPublic], Lenient(factory=list)] = Field(
        description="Every run, oldest first: why each ended, and when.")


# One page of a task listing: ``count`` is the total over every page. (No docstring: it would become the API
# schema's description, which stays as it was.)
class ProcessorTasksPublic(BaseModel):
    count: int
    tasks: list[ProcessorTaskPublic]


def lenient(model: type[BaseModel], name: str, doc: str,
            readers: dict[type[BaseModel], type[BaseModel]] | None = None) -> type[BaseModel]:
    """The tolerant reading of ``model``: every :class:`Lenient` field gets its default, other fields stay as
    they are, unknown fields are kept (``extra="allow"``) and instances are frozen. ``readers`` swaps a nested
    model (also inside ``list[...]``) for its own reading model."""
    readers = readers or {}
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation = _reader_type(info.annotation, readers)
        marker = next((m for m in info.metadata if isinstance(m, Lenient)), None)
        kept = [m for m in info.metadata if not isinstance(m, Lenient)]
        if marker is None:
            fields[field_name] = (Annotated[(annotation, *kept)] if kept else annotation, _copy(info))
            continue
        if marker.factory is None and marker.default is None:
            annotation = annotation | None
        default = ({"default_factory": marker.factory} if marker.factory is not None
                   else {"default": marker.default})
        fields[field_name] = (Annotated[(annotation, *kept)] if kept else annotation,
                              Field(description=info.description, **default))
    reader = create_model(name, __config__=ConfigDict(extra="allow", frozen=True), __doc__=doc,
                          __module__=__name__, **fields)
    return reader


def _copy(info: FieldInfo) -> FieldInfo:
    if info.default_factory is not None:
        return Field(default_factory=info.default_factory, description=info.description)
    return Field(info.default, description=info.description)


def _reader_type(annotation: Any, readers: dict[type[BaseModel], type[BaseModel]]) -> Any:
    if annotation in readers:
        return readers[annotation]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return list[_reader_type(item, readers)]  # type: ignore[misc]
    return annotation


RunInfo = lenient(RunPublic, "RunInfo", "One run of a task, read tolerantly (see :class:`RunPublic`).")

TaskInfo = lenient(ProcessorTaskPublic, "TaskInfo", """A processor task exactly as the service describes it (ModelArts'
``DescribeProcessorTaskResp`` plus progress and runs). :class:`rayproc_client.Task` wraps it; its fields are all
here. Fields the service leaves out take their defaults; fields this release does not know are kept.""",
                   readers={RunPublic: RunInfo})

TaskPage = lenient(ProcessorTasksPublic, "TaskPage",
                   "One page of a task listing: ``count`` is the total over every page.",
                   readers={ProcessorTaskPublic: TaskInfo, RunPublic: RunInfo})


# ----- Every other answer ------------------------------------------------------------------------------------
# What the service answers besides the task, typed so that its OpenAPI document says it. Answers keep fields a
# newer service adds (``extra="allow"``), as the task does.


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class TaskCreated(_Answer):
    """A create's answer: the new task's id (the work runs as a Ray job)."""

    task_id: str


class Health(_Answer):
    """The service answers; ``ray`` says whether the Ray Jobs API does."""

    status: Literal["ok"]
    ray: Literal["reachable", "unreachable"]


class Readiness(_Answer):
    """``/-/readyz``: Ray's Jobs API and the database answered."""

    status: Literal["ready"]
    ray: Literal["reachable"] = Field(description="Ray's Jobs API answered.")
    jobs_api_version: str = Field(description="The version Ray's Jobs API reports for itself.")
    database: Literal["reachable"] = Field(description="The service's database answered a read.")


class TemplateItem(_Answer):
    template_id: str
    label_en: str
    label_zh: str


class TemplateItems(_Answer):
    """ModelArts' template list."""

    total: int
    items: list[TemplateItem]


class OperatorInfo(_Answer):
    id: str
    description: str
    requires: list[str] = Field(description="Features the operator reads, computed by other operators first.")
    params_schema: dict[str, Any] = Field(description="The operator's params as JSON Schema.")


class TemplateInfo(TemplateItem):
    default_operators: list[str]
    operators: list[OperatorInfo]


class TemplatesPublic(_Answer):
    total: int
    templates: list[TemplateInfo]


# ----- imports, datasets, versions, items --------------------------------------------------------------------


class ImportItem(BaseModel):
    """One item to import: its data fields (``image``: a server-side path or ``s3://`` URI, ``text``, any other
    field), optionally with Label Studio ``annotations`` and ``predictions``."""

    model_config = ConfigDict(extra="allow")

    image: str | None = None
    text: str | None = None
    annotations: list[dict[str, Any]] | None = None
    predictions: list[dict[str, Any]] | None = None


class ImportFolder(BaseModel):
    """Import every image in a server-side folder (or under an ``s3://`` prefix)."""

    model_config = ConfigDict(extra="forbid")

    folder: str = Field(description="A folder under the service's allowed roots, or an s3:// prefix.")
    recursive: bool = True
    metadata_sheet: str | None = Field(None, description="A .csv under the allowed roots with a file_name column.")


class ImportCreated(_Answer):
    """An import was accepted; poll ``GET .../imports/{import}/`` for its progress."""

    import_: int = Field(alias="import", description="The import's id.")

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ImportPublic(_Answer):
    """An import's status, counts, per-item failures and (when asked for) the created item ids."""

    id: int
    project: str
    dataset_id: str
    status: str = Field(description="queued, running, completed or failed.")
    total: int | None
    task_count: int
    annotation_count: int
    prediction_count: int
    failed_count: int
    failures: list[dict[str, Any]]
    duration: int | None = Field(description="Whole seconds from the request to the last item recorded.")
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    updated_at: str | None
    commit_to_project: bool
    committed_at: str | None
    preannotated_from_fields: list[str] | None = Field(description="null for an import that named none.")
    file_upload_ids: list[int]
    error: str | None
    ray_job_id: str | None
    task_ids: list[int] | None = Field(None, description="Present when the import asked for return_task_ids.")


# ----- Label Studio's projects and tasks ------------------------------------------------------------------


class LabelStudioProject(_Answer):
    """A project in Label Studio's shape (its ``id`` is rayproc's project id, a string)."""

    id: str
    title: str
    description: str
    task_number: int
    total_annotations_number: int
    total_predictions_number: int
    num_tasks_with_annotations: int
    finished_task_number: int
    maximum_annotations: int
    role: str | None = Field(description="Your role in the project (viewer, member; admin for service admins).")


class LabelStudioProjectPage(_Answer):
    """Label Studio's page of projects."""

    count: int
    next: str | None
    previous: str | None
    results: list[LabelStudioProject]


class LabelStudioTask(_Answer):
    """An imported item as a Label Studio task; ``annotations`` and ``predictions`` with ``fields=all``."""

    id: int
    data: dict[str, Any]
    project: str
    created_at: str
    updated_at: str
    total_annotations: int
    total_predictions: int
    is_labeled: bool
    meta: dict[str, Any]
    dataset_id: str
    import_id: int
    image: str | None
    digest: str | None
    annotations: list[dict[str, Any]] | None = None
    predictions: list[dict[str, Any]] | None = None


class LabelStudioTaskPage(_Answer):
    """Label Studio's page of tasks."""

    total: int
    total_annotations: int
    total_predictions: int
    tasks: list[LabelStudioTask]


class LabelStudioReimported(_Answer):
    """Label Studio's reimport answer: what committing the staged imports created."""

    task_count: int
    annotation_count: int
    prediction_count: int
    duration: int = Field(description="Whole seconds the commit took.")
    file_upload_ids: list[int]
    found_formats: dict[str, Any]
    data_columns: list[str]


class VersionPublic(_Answer):
    version_id: str
    dataset_id: str
    name: str
    item_count: int
    create_time: int = Field(description="Epoch milliseconds.")


class DatasetPublic(_Answer):
    dataset_id: str
    project_id: str
    name: str
    create_time: int = Field(description="Epoch milliseconds.")
    item_count: int


class DatasetDetail(DatasetPublic):
    versions: list[VersionPublic]


class DatasetsPublic(_Answer):
    total: int
    datasets: list[DatasetPublic]


class VersionsPublic(_Answer):
    total: int
    versions: list[VersionPublic]


class ItemPublic(_Answer):
    id: int
    data: dict[str, Any]
    image: str | None
    digest: str
    annotation_count: int
    prediction_count: int
    import_id: int
    create_time: int = Field(description="Epoch milliseconds.")


class ItemsPublic(_Answer):
    total: int
    items: list[ItemPublic]


# ----- /v1: accounts and the cluster ---------------------------------------------------------------------------

Role = Literal["viewer", "member", "admin"]


class ProjectPublic(_Answer):
    project_id: str
    name: str
    role: Role | None = Field(description="The caller's role in the project.")


class ProjectsPublic(_Answer):
    projects: list[ProjectPublic]


class WhoAmI(ProjectsPublic):
    name: str
    is_admin: bool


class UserPublic(_Answer):
    name: str
    is_admin: bool
    create_time: int | None = Field(None, description="Epoch milliseconds.")


class UsersPublic(_Answer):
    users: list[UserPublic]


class TokenPublic(_Answer):
    token_id: str
    name: str
    user: str
    create_time: int = Field(description="Epoch milliseconds.")
    revoked: bool


class TokensPublic(_Answer):
    tokens: list[TokenPublic]


class TokenIssued(_Answer):
    """The token is in this answer only."""

    token_id: str
    token: str
    user: str


class ProjectCreated(_Answer):
    project_id: str
    name: str


class MemberSet(_Answer):
    project_id: str
    user: str
    role: Literal["viewer", "member"]


class NodePublic(_Answer):
    node_id: str
    alive: bool
    address: str | None = Field(description="The node's IP address.")
    is_head: bool
    resources: dict[str, float] = Field(description="What the node offers Ray (CPU, memory in bytes, GPU, ...).")
    available_resources: dict[str, float] = Field(description="What of it is free now.")
    utilisation: dict[str, float] = Field(description="Share of each resource in use, 0 to 1.")
    running_tasks: int = Field(description="rayproc runs whose job driver runs on this node (their chunks may "
                                           "run on any node).")
    dashboard_url: str = Field(description="The node's page in the Ray dashboard.")


class ClusterPublic(_Answer):
    nodes: list[NodePublic]
    alive_nodes: int
    total_resources: dict[str, float]
    available_resources: dict[str, float]
    running_by_project: dict[str, int] = Field(description="Runs handed to Ray and not ended, by project.")
    queued_by_project: dict[str, int] = Field(description="Runs waiting in the admission queue, by project.")
    dashboard_url: str = Field(description="The Ray dashboard.")


class ClusterTaskPublic(_Answer):
    task_id: str
    project_id: str
    task_type: str
    status: int = Field(description="0 initialized (queued or starting), 1 running.")
    run_id: str = Field(description="The current run's Ray submission id.")
    phase: Literal["queued", "submitting", "submitted"]
    queue_position: int | None = Field(description="1-based place in the admission queue while queued.")
    node_id: str | None = Field(description="The node the run's job driver runs on, once Ray placed it.")
    processed_count: int
    failed_count: int
    total_count: int | None
    dashboard_url: str | None = Field(description="The run's Ray job in the dashboard, once Ray has it.")


class ClusterTasksPublic(_Answer):
    tasks: list[ClusterTaskPublic]
    count: int


# ----- the synapse agent's jobs -----------------------------------------------------------------------------


class AgentJob(_Answer):
    """A task in the shape of a Ray job's details, with rayproc's progress beside it."""

    type: Literal["SUBMISSION"]
    job_id: str
    submission_id: str
    status: Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"]
    entrypoint: str
    message: str | None
    error_type: str | None
    start_time: int | None = Field(description="Epoch milliseconds.")
    end_time: int | None = Field(description="Epoch milliseconds; null while the task is not terminal.")
    metadata: dict[str, str]
    task_status: int = Field(description="0 initialized, 1 running, 2 completed, 3 failed, 4 stopped")
    stop_requested: bool
    completion_percentage: float
    total_count: int | None
    processed_count: int
    failed_count: int
    ray_job_id: str | None
    ray_job_ids: list[str]


class AgentJobStopped(AgentJob):
    stopped: Literal[True]


class AgentHealth(_Answer):
    status: Literal["ok"]
    ray: str
