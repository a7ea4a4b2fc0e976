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
