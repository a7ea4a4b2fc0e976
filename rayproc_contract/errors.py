"""The errors of rayproc's API: one tree, raised by the service and raised again, class for class, by the client.

Every error body has one shape::

    {"error_code": "<stable code>", "error_msg": "<human message>"}

Every error has three attributes: ``status_code`` (the HTTP status), ``error_code`` (the stable machine code, the
body's ``error_code``) and ``message`` (the body's ``error_msg``). They default to the class's own; an instance
may carry others (the client keeps the status and code it was answered with, even for a code it does not know).

The tree (status code, ``error_code``)::

    RayprocError                        the root: rayproc_client.ClientError is this class
    └── ServiceError                    500 service_error        (the service answered with an error)
        ├── BadRequest                  400 bad_request
        │   ├── InvalidRequest          400 invalid_request      (malformed body or query)
        │   ├── InvalidResourceId       400 invalid_resource_id  (an id fails the id rules)
        │   ├── InvalidParameter        400 invalid_parameter    (a field's value is not acceptable)
        │   ├── InvalidState            400 invalid_state        (not allowed in the task's current status)
        │   └── PathNotAllowed          400 path_not_allowed     (outside the allowed roots)
        ├── Unauthorized                401 unauthorized         (no token, or not a valid one)
        ├── Forbidden                   403 forbidden            (your role does not allow this)
        ├── NotFound                    404 not_found            (also: exists, but not in a project of yours)
        ├── MethodNotAllowed            405 method_not_allowed
        ├── Conflict                    409 conflict
        ├── PayloadTooLarge             413 payload_too_large
        ├── UnsupportedMediaType        415 unsupported_media_type
        ├── StorageUnavailable          503 storage_unavailable  (the data directory cannot be written)
        │   └── InsufficientStorage     507 insufficient_storage (it is full)
        ├── RayUnavailable              503 ray_unavailable
        └── InternalError               500 internal_error

:data:`ERROR_CLASSES` is the one table from ``error_code`` to class; :func:`error_class` reads an answer back
through it, falling back to the most general class for the answer's status.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

__all__ = [
    "ERROR_CLASSES",
    "BadRequest",
    "Conflict",
    "ErrorBody",
    "Forbidden",
    "InsufficientStorage",
    "InternalError",
    "InvalidParameter",
    "InvalidRequest",
    "InvalidResourceId",
    "InvalidState",
    "MethodNotAllowed",
    "NotFound",
    "PathNotAllowed",
    "PayloadTooLarge",
    "RayUnavailable",
    "RayprocError",
    "ServiceError",
    "StorageUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_class",
]


# The body of every error answer. No docstring: it would become the API schema's description, which stays as it was.
class ErrorBody(BaseModel):
    error_code: str
    error_msg: str


class RayprocError(Exception):
    """The root of the API's errors on the service, and of every error the client raises (the client exports it
    as ``ClientError``, and adds its own errors for no answer, a wrong answer and a task's outcome under it).

    ``status_code`` and ``error_code`` default to the class's own and may be overridden per instance.
    """

    status_code: int | None = None
    error_code: str = "rayproc_error"

    def __init__(self, message: str, *, status_code: int | None = None, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_code is not None:
            self.error_code = error_code

    def __str__(self) -> str:
        prefix = f"{self.status_code} " if self.status_code is not None else ""
        return f"{prefix}{self.error_code}: {self.message}"


class ServiceError(RayprocError):
    """An error the service answers with. See the module docstring for the subclasses."""

    status_code: int | None = 500
    error_code = "service_error"
    #: Headers the answer carries besides the body.
    headers: ClassVar[dict[str, str] | None] = None

    def body(self) -> dict[str, str]:
        """The answer's JSON body."""
        return ErrorBody(error_code=self.error_code, error_msg=self.message).model_dump()


class BadRequest(ServiceError):
    status_code = 400
    error_code = "bad_request"


class InvalidRequest(BadRequest):
    """Malformed JSON, wrong types, unknown fields, bad or conflicting query parameters."""

    error_code = "invalid_request"


class InvalidResourceId(BadRequest):
    """An id breaks the id rules (empty, characters other than letters, digits, ``-`` and ``_``, over 100)."""

    error_code = "invalid_resource_id"


class InvalidParameter(BadRequest):
    """Unknown template or operator, bad operator params, missing source, unsupported type."""

    error_code = "invalid_parameter"


class InvalidState(BadRequest):
    """Stop or resume is not allowed in the task's status; the message names it."""

    error_code = "invalid_state"


class PathNotAllowed(BadRequest):
    """A path outside the service's allowed roots, with ``..``, an escaping symlink or a URL scheme."""

    error_code = "path_not_allowed"


class Unauthorized(ServiceError):
    """No token, a malformed one, or an unknown or revoked one."""

    status_code = 401
    error_code = "unauthorized"
    headers = {"WWW-Authenticate": 'Token realm="rayproc", Bearer realm="rayproc"'}


class Forbidden(ServiceError):
    """Your role does not allow this (a viewer creating a task; a non-admin managing accounts)."""

    status_code = 403
    error_code = "forbidden"


class NotFound(ServiceError):
    """No such task, project or endpoint, or a project you do not belong to."""

    status_code = 404
    error_code = "not_found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    error_code = "method_not_allowed"


class Conflict(ServiceError):
    """The request conflicts with the current state (deleting a task that is still active)."""

    status_code = 409
    error_code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error_code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """An upload in a format the service does not read."""

    status_code = 415
    error_code = "unsupported_media_type"


class StorageUnavailable(ServiceError):
    """The service's data directory cannot be written (a read-only file system, say); the message says why.
    Nothing was changed; reads that need no writing still answer."""

    status_code = 503
    error_code = "storage_unavailable"


class InsufficientStorage(StorageUnavailable):
    """The service's data directory is full. Nothing was changed, nothing half-written."""

    status_code = 507
    error_code = "insufficient_storage"


class RayUnavailable(ServiceError):
    """The service cannot reach its Ray cluster; nothing was changed. The client retries it for idempotent
    calls."""

    status_code = 503
    error_code = "ray_unavailable"


class InternalError(ServiceError):
    """Something unexpected on the service; the message has a reference to find it in the service log."""

    status_code = 500
    error_code = "internal_error"


#: The one table from ``error_code`` to class: every class of the tree under :class:`ServiceError`, itself included.
ERROR_CLASSES: dict[str, type[ServiceError]] = {
    cls.error_code: cls
    for cls in (
        ServiceError, BadRequest, InvalidRequest, InvalidResourceId, InvalidParameter, InvalidState, PathNotAllowed,
        Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, PayloadTooLarge, UnsupportedMediaType,
        # Before RayUnavailable, which stays the class of an unknown 503 code.
        StorageUnavailable, InsufficientStorage, RayUnavailable, InternalError,
    )
}

# For codes the table does not know: the most general class of each status (derived, not a second table).
_BY_STATUS: dict[int, type[ServiceError]] = {
    cls.status_code: cls for cls in ERROR_CLASSES.values()
    if cls.status_code is not None and cls.__base__ is ServiceError
}


def error_class(error_code: str | None, status_code: int) -> type[ServiceError]:
    """The class for an answer: its ``error_code``'s, else the most general class of its status (an unknown 400
    code is a :class:`BadRequest`), else :class:`ServiceError` (a proxy's 502, say)."""
    return ERROR_CLASSES.get(error_code or "") or _BY_STATUS.get(status_code, ServiceError)
