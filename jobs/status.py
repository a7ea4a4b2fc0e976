"""Task and run states."""

from __future__ import annotations

import enum


class TaskStatus(enum.IntEnum):
    """ModelArts processor-task status codes."""

    INITIALIZED = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    STOPPED = 4

    def is_terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.STOPPED)

    @property
    def label(self) -> str:
        return self.name.lower()


class ErrorType(str, enum.Enum):
    """Why a task failed; stored on the record next to ``error_msg``."""

    INPUT_NOT_FOUND = "input_not_found"
    NO_ITEMS = "no_items"
    PATH_NOT_ALLOWED = "path_not_allowed"
    OPERATOR_ERROR = "operator_error"
    OUTPUT_ERROR = "output_error"
    JOB_DIED = "job_died"
    CLUSTER_ERROR = "cluster_error"
    RAY_UNAVAILABLE = "ray_unavailable"
    INTERNAL_ERROR = "internal_error"


class TaskFailure(Exception):
    """A run cannot go on; recorded on the task as ``error_type`` and ``error_msg``."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
