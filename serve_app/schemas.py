"""Request and response models. Field names follow ModelArts' processor-task API (Tables 3-8).

The answers the client reads too (the public task, the error body) are the wire contract's, imported here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rayproc_contract.errors import ErrorBody
from rayproc_contract.ids import ID_PATTERN
from rayproc_contract.models import ProcessorTaskPublic, ProcessorTasksPublic, SourceType, TaskCreated
from rayproc_contract.status import TaskType

__all__ = [
    "ErrorBody",
    "Execution",
    "OperatorParam",
    "ProcessorDataSource",
    "ProcessorTaskCreate",
    "ProcessorTaskPublic",
    "ProcessorTasksPublic",
    "TaskCreated",
    "TemplateParam",
    "WorkPath",
]

Str64 = Annotated[str, Field(max_length=64)]
Str256 = Annotated[str, Field(max_length=256)]
PathStr = Annotated[str, Field(min_length=1, max_length=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessorDataSource(_Strict):
    """Input of a task. ``OBS``: a server-side path under an allowed root. ``TASK``: the
    id of another task in the project, whose input is processed again."""

    type: SourceType = "OBS"
    source: PathStr
    name: Str64 | None = None
    version_id: Str64 | None = None
    version_name: Annotated[str, Field(max_length=32)] | None = None


class OperatorParam(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Str64 | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    advanced_params_switch: bool | None = None


class TemplateParam(_Strict):
    # The enum documents the template ids; the service checks them itself, so an unknown one is a 400
    # invalid_parameter that lists the valid ids.
    id: Annotated[str, Field(min_length=1, max_length=64, description="The template (task type).",
                             json_schema_extra={"enum": [t.value for t in TaskType]})]
    name: Str64 | None = None
    operator_params: Annotated[list[OperatorParam], Field(max_length=32)] = Field(default_factory=list)


class WorkPath(_Strict):
    """Where outputs go. ``path`` is a server-side folder; outputs land in ``<path>/<task_id>``."""

    type: Literal["OBS", "DATASET"] = "OBS"
    path: PathStr | None = None
    name: Str64 | None = None
    output_path: PathStr | None = None
    version_id: Str64 | None = None
    version_name: Annotated[str, Field(max_length=32)] | None = None


class Execution(_Strict):
    """How the run is split across the cluster (a rayproc extension)."""

    chunk_size: Annotated[int, Field(ge=1, le=10_000, description="Items per Ray task.")] | None = None


class ProcessorTaskCreate(_Strict):
    """A new task. Give its input as ``data_source`` or as ``inputs`` (one source); if both are given, they must
    be the same source."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["data_source"], "properties": {"data_source": {"type": "object"}}},
        {"required": ["inputs"], "properties": {"inputs": {"type": "array", "minItems": 1}}},
    ]})

    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: Str256 = ""
    data_source: ProcessorDataSource | None = None
    inputs: Annotated[list[ProcessorDataSource], Field(max_length=1)] | None = None
    template: TemplateParam
    work_path: WorkPath | None = None
    version_id: Str64 | None = None
    workspace_id: Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN.pattern)] = "0"
    execution: Execution | None = None
    priority: Annotated[int, Field(ge=-100, le=100, description=(
        "Place in the admission queue (a rayproc extension): higher starts first; equal priorities start in the "
        "order they were created."))] = 0

    @model_validator(mode="after")
    def _one_input(self) -> ProcessorTaskCreate:
        if self.data_source is None and not self.inputs:
            raise ValueError("give the input as data_source or inputs")
        if self.data_source is not None and self.inputs and self.inputs[0] != self.data_source:
            raise ValueError("data_source and inputs disagree: give one of them")
        return self

    @property
    def source(self) -> ProcessorDataSource:
        return self.data_source or self.inputs[0]  # type: ignore[index]
