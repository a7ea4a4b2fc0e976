"""Everything ``rayproc_client`` raises. Every error is a :class:`ClientError` with three attributes:

* ``status_code``: the HTTP status the service answered with (``None`` when it did not answer at all,
  or when the error is about a task's outcome rather than a request);
* ``error_code``: a stable machine code; for answers from the service, its ``error_code`` verbatim;
* ``message``: the human message (the service's ``error_msg`` for its answers).

The hierarchy (status code, ``error_code``)::

    ClientError
    ├── ServiceError                    the service answered with an error (any status; see below)
    │   ├── BadRequest                  400 bad_request
    │   │   ├── InvalidRequest          400 invalid_request      (malformed body or query)
    │   │   ├── InvalidResourceId       400 invalid_resource_id  (an id fails the id rules; also raised
    │   │   │                                                      before sending, see below)
    │   │   ├── InvalidParameter        400 invalid_parameter    (a field's value is not acceptable)
    │   │   ├── InvalidState            400 invalid_state        (not allowed in the task's current status)
    │   │   └── PathNotAllowed          400 path_not_allowed     (outside the service's allowed roots)
    │   ├── Unauthorized                401 unauthorized         (no token, or not a valid one)
    │   ├── Forbidden                   403 forbidden            (your role does not allow this)
    │   ├── NotFound                    404 not_found            (also: exists, but not in a project of yours)
    │   ├── MethodNotAllowed            405 method_not_allowed
    │   ├── Conflict                    409 conflict
    │   ├── PayloadTooLarge             413 payload_too_large
    │   ├── UnsupportedMediaType        415 unsupported_media_type
    │   ├── RayUnavailable              503 ray_unavailable      (retried for idempotent calls)
    │   └── InternalError               500 internal_error
    ├── TransportError                  no answer at all (the ``httpx`` error is the ``__cause__``)
    │   ├── ConnectError                the service could not be reached (retried for idempotent calls)
    │   └── RequestTimeout              it did not answer within the client's timeout
    ├── UnexpectedResponse              a success answer that is not what the API promises
    └── TaskError                       about a task's outcome; the task is ``.task``
        ├── TaskFailedError             the task ended failed (status 3): ``.error_type``, ``.error_msg``
        └── TaskTimeoutError            ``wait_till_done`` gave up (also a builtin ``TimeoutError``)

The :class:`ServiceError` branch mirrors the server's own hierarchy (``serve_app/errors.py``) class for class and
code for code, through the one table :data:`ERROR_CLASSES`. An answer whose ``error_code`` the table does not know
becomes the most general class for its status (an unknown 400 code is a :class:`BadRequest`, an unknown 404 a
:class:`NotFound`), and a plain :class:`ServiceError` for a status no class has (a proxy's 502, say); the
instance keeps the status and code it was answered with.

:class:`InvalidResourceId` is also raised by the client itself, without sending anything, when a task id breaks the
service's id rules (``status_code`` 400, exactly the message the service would answer with).

Mistakes in calling the client (a ``check_frequency`` under two seconds, a page size over 100) are ``ValueError``,
as for any Python function: they are not about the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from rayproc_client.task import BaseTask

__all__ = [
    "ERROR_CLASSES",
    "BadRequest",
    "ClientError",
    "Conflict",
    "ConnectError",
    "Forbidden",
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
    "RequestTimeout",
    "ServiceError",
    "TaskError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "Unauthorized",
    "UnexpectedResponse",
    "UnsupportedMediaType",
]


class ClientError(Exception):
    """Base of every error this package raises.

    ``status_code`` and ``error_code`` default to the class's own and may be overridden per instance (an error
    built from an answer keeps the answer's status and code).
    """

    status_code: int | None = None
    error_code: str = "client_error"

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


# ----- answers from the service ------------------------------------------------------------


class ServiceError(ClientError):
    """The service answered with an error status. See the module docstring for the subclasses."""

    error_code = "service_error"


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


class RayUnavailable(ServiceError):
    """The service cannot reach its Ray cluster; nothing was changed. Idempotent calls retry it."""

    status_code = 503
    error_code = "ray_unavailable"


class InternalError(ServiceError):
    """Something unexpected on the service; the message has a reference to find it in the service log."""

    status_code = 500
    error_code = "internal_error"


#: The one table from the service's ``error_code`` to the class raised for it.
ERROR_CLASSES: dict[str, type[ServiceError]] = {
    cls.error_code: cls
    for cls in (
        BadRequest, InvalidRequest, InvalidResourceId, InvalidParameter, InvalidState, PathNotAllowed,
        Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict, PayloadTooLarge, UnsupportedMediaType,
        RayUnavailable, InternalError,
    )
}

# For codes the table does not know: the most general class of each status (derived, not a second table).
_BY_STATUS: dict[int, type[ServiceError]] = {
    cls.status_code: cls for cls in ERROR_CLASSES.values()
    if cls.status_code is not None and cls.__base__ is ServiceError
}


# ----- no answer, or not the answer the API promises ----------------------------------------


class TransportError(ClientError):
    """No answer from the service; the underlying ``httpx`` error is the ``__cause__``."""

    error_code = "transport_error"


class ConnectError(TransportError):
    """The service could not be reached (refused, reset, DNS, connect timeout). Idempotent calls retry it."""

    error_code = "connect_error"


class RequestTimeout(TransportError):
    """The service took longer than the client's ``timeout`` to answer. Not retried: it may still be working."""

    error_code = "request_timeout"


class UnexpectedResponse(ClientError):
    """A success status with a body that is not what the API promises (not JSON, or the wrong shape)."""

    error_code = "unexpected_response"


# ----- a task's outcome ------------------------------------------------------------------------


class TaskError(ClientError):
    """About a task's outcome rather than a request; the task as last seen is ``.task``."""

    error_code = "task_error"

    def __init__(self, message: str, task: BaseTask) -> None:
        super().__init__(message)
        self.task = task


class TaskFailedError(TaskError):
    """The task ended failed (status 3). ``error_type`` is the failure class (``input_not_found``, ``no_items``,
    ``job_died``, ...) and ``error_msg`` the service's message; resuming the task is possible."""

    error_code = "task_failed"

    def __init__(self, task: BaseTask) -> None:
        self.error_type = task.info.error_type
        self.error_msg = task.info.error_msg
        super().__init__(f"task {task.uid} failed ({self.error_type}): {self.error_msg}", task)


class TaskTimeoutError(TaskError, TimeoutError):
    """``wait_till_done`` reached its timeout before the task finished; the task is still running on the
    service (waiting does not stop it)."""

    error_code = "task_timeout"

    def __init__(self, task: BaseTask, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(
            f"task {task.uid} is still {task.status_name} ({task.completion_percentage:g}% done) "
            f"after {timeout_seconds:g} seconds", task)


# ----- the one translation ------------------------------------------------------------------


def translate(outcome: httpx.Response | httpx.TransportError) -> ClientError:
    """The :class:`ClientError` for a failed exchange: an error answer, or the ``httpx`` error that stood for
    one. This is the only place where answers and ``httpx`` errors become this package's errors."""
    if isinstance(outcome, httpx.TimeoutException) and not isinstance(outcome, httpx.ConnectTimeout):
        return RequestTimeout(f"no answer in time from {_where(outcome)}: {type(outcome).__name__}")
    if isinstance(outcome, (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError)):
        return ConnectError(f"cannot reach {_where(outcome)}: {type(outcome).__name__}: {outcome}")
    if isinstance(outcome, httpx.TransportError):
        return TransportError(f"{type(outcome).__name__} talking to {_where(outcome)}: {outcome}")

    status = outcome.status_code
    if outcome.is_success:
        return UnexpectedResponse(
            f"{outcome.request.method} {outcome.request.url.path} answered {status} with a body that is not "
            f"what the API promises: {outcome.text[:200]!r}", status_code=status)
    code, message = _error_body(outcome)
    cls = ERROR_CLASSES.get(code or "") or _BY_STATUS.get(status, ServiceError)
    return cls(message, status_code=status, error_code=code or f"http_{status}")


def _where(exc: httpx.TransportError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # httpx attaches the request on the way out of a client; a bare error has none
        return "the service"


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error_code"), str):
        return body["error_code"], str(body.get("error_msg", ""))
    text = response.text.strip()
    return None, text[:500] or (response.reason_phrase or f"HTTP {response.status_code}")
