"""The task list's query: ModelArts' ``ListProcessorTasks`` parameters, their bounds and their defaults.

``offset`` is a start *page* index, as ModelArts documents it (page size ``limit``), not a row offset: ``offset=2``
with ``limit=10`` is tasks 21-30. The service validates a query with :class:`ListQuery` (a 400 naming the
parameter); the client builds the same model and sends :meth:`ListQuery.query_pairs`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rayproc_contract.errors import InvalidParameter
from rayproc_contract.models import SourceType
from rayproc_contract.status import TaskTypeName

__all__ = ["MAX_LIMIT", "MAX_VERSION_IDS", "ListQuery", "Order", "SortBy"]

Order = Literal["asc", "desc"]
SortBy = Literal["create_time", "name", "duration_seconds"]
MAX_LIMIT = 100
MAX_VERSION_IDS = 100
MAX_VERSION_ID_LENGTH = 64


class ListQuery(BaseModel):
    """One page of ``GET /v2/{project_id}/processor-tasks``. Unknown parameters are ignored, as ModelArts does."""

    model_config = ConfigDict(frozen=True)

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Page size.")] = 10
    offset: Annotated[int, Field(ge=0, le=1_000_000, description="Page index (not a row offset), from 0.")] = 0
    order: Order = "desc"
    sort_by: SortBy = "create_time"
    status: Annotated[int | None, Field(ge=0, le=4, description="0 initialized ... 4 stopped")] = None
    task_type: TaskTypeName | None = None
    task_name: Annotated[str | None, Field(max_length=64, description="Case-insensitive substring.")] = None
    source: Annotated[str | None, Field(max_length=4096)] = None
    source_type: SourceType | None = None
    version_id: Annotated[list[str], Field(description="Repeat it or separate ids with commas.")] = []
    workspace_id: Annotated[str, Field(max_length=64)] = "0"
    query_current: bool = False
    return_result: bool = True

    @property
    def page(self) -> int:
        """The page index, which the API calls ``offset``."""
        return self.offset

    @property
    def version_ids(self) -> tuple[str, ...]:
        """The ``version_id`` values, split on commas, stripped, without repeats, in their order."""
        return tuple(dict.fromkeys(v.strip() for raw in self.version_id for v in raw.split(",") if v.strip()))

    def check_version_ids(self) -> None:
        """Raise :class:`InvalidParameter` for too many version ids, or one too long."""
        versions = self.version_ids
        if len(versions) > MAX_VERSION_IDS:
            raise InvalidParameter(f"version_id: at most {MAX_VERSION_IDS} ids, got {len(versions)}")
        if any(len(v) > MAX_VERSION_ID_LENGTH for v in versions):
            raise InvalidParameter(f"version_id: each id has at most {MAX_VERSION_ID_LENGTH} characters")

    def query_pairs(self) -> tuple[tuple[str, str], ...]:
        """The query string's ``(name, value)`` pairs: every parameter with a value, ``version_id`` once per id."""
        pairs = [("limit", str(self.limit)), ("offset", str(self.offset)), ("order", self.order),
                 ("sort_by", self.sort_by), ("workspace_id", self.workspace_id),
                 ("query_current", _flag(self.query_current)), ("return_result", _flag(self.return_result))]
        optional = {"status": self.status, "task_type": self.task_type, "task_name": self.task_name,
                    "source": self.source, "source_type": self.source_type}
        pairs += [(key, _text(value)) for key, value in optional.items() if value is not None]
        pairs += [("version_id", v) for v in self.version_id]
        return tuple(pairs)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _text(value: object) -> str:
    # A caller may pass the enums themselves (TaskStatus.FAILED, TaskType.CLEANING): send their values.
    return str(value.value if isinstance(value, enum.Enum) else value)
