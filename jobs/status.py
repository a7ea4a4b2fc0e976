"""Task and run states. The status codes themselves are the wire contract's (:mod:`rayproc_contract.status`)."""

from __future__ import annotations

import enum

from rayproc_contract.status import TaskStatus

__all__ = ["ErrorType", "TaskFailure", "TaskStatus"]


class ErrorType(str, enum.Enum):
    """Why a task failed; stored on the record next to ``error_msg``."""

    INPUT_NOT_FOUND = "input_not_found"
    #: Most items of a chunk were not found while the run went on (the folder moved, the store went away).
    SOURCE_UNAVAILABLE = "source_unavailable"
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
