"""Task and run states. The status codes themselves are the wire contract's (:mod:`rayproc_contract.status`)."""

from __future__ import annotations

import enum

from rayproc_contract.status import TaskStatus

__all__ = ["INFRASTRUCTURE_ERRORS", "ErrorType", "TaskFailure", "TaskStatus"]


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


#: Failures of the cluster, not of the task: a new run from the committed chunks may well succeed, so the service
#: retries them by itself (``max_run_attempts``). Every other type is the input's, the parameters' or the
#: output storage's and would fail again the same way: ``input_not_found``, ``no_items``, ``path_not_allowed``
#: and ``operator_error`` (the input or the parameters), ``output_error`` (the work path cannot be written: full,
#: read-only or gone, which a person must fix) and ``internal_error`` (a fault in rayproc itself).
INFRASTRUCTURE_ERRORS = frozenset({ErrorType.JOB_DIED, ErrorType.CLUSTER_ERROR, ErrorType.RAY_UNAVAILABLE})


class TaskFailure(Exception):
    """A run cannot go on; recorded on the task as ``error_type`` and ``error_msg``."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
