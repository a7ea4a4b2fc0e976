"""Everything ``rayproc_client`` raises. Every error is a :class:`ClientError` with three attributes:

* ``status_code``: the HTTP status the service answered with (``None`` when it did not answer at all,
  or when the error is about a task's outcome rather than a request);
* ``error_code``: a stable machine code; for answers from the service, its ``error_code`` verbatim;
* ``message``: the human message (the service's ``error_msg`` for its answers).

The hierarchy (status code, ``error_code``)::

    ClientError
    ├── ServiceError                    500 service_error        (the service answered with an error; any status)
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
    │   ├── StorageUnavailable          503 storage_unavailable  (the service's data directory cannot be written)
    │   │   └── InsufficientStorage     507 insufficient_storage (it is full)
    │   ├── RayUnavailable              503 ray_unavailable      (retried for idempotent calls)
    │   └── InternalError               500 internal_error
    ├── TransportError                  no answer at all (the ``httpx`` error is the ``__cause__``)
    │   ├── ConnectError                the service could not be reached (retried for idempotent calls)
    │   └── RequestTimeout              it did not answer within the client's timeout
    ├── UnexpectedResponse              a success answer that is not what the API promises
    └── TaskError                       about a task's outcome; the task is ``.task``
        ├── TaskFailedError             the task ended failed (status 3): ``.error_type``, ``.error_msg``
        └── TaskTimeoutError            ``wait_till_done`` gave up (also a builtin ``TimeoutError``)

The :class:`ServiceError` branch *is* the service's own tree: its classes are defined once, in
:mod:`rayproc_contract.errors`, raised by the service and raised again here (``rayproc_client.NotFound`` is
``rayproc_contract.errors.NotFound``), through the one table :data:`ERROR_CLASSES`. An answer whose
``error_code`` the table does not know becomes the most general class for its status (an unknown 400 code is a
:class:`BadRequest`, an unknown 404 a :class:`NotFound`), and a plain :class:`ServiceError` for a status no class
has (a proxy's 502, say); the instance keeps the status and code it was answered with.

:class:`InvalidResourceId` is also raised by the client itself, without sending anything, when a task id breaks the
service's id rules (``status_code`` 400, exactly the message the service would answer with).

Mistakes in calling the client (a ``check_frequency`` under two seconds, a page size over 100) are ``ValueError``,
as for any Python function: they are not about the service.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from rayproc_contract import errors as _contract
from rayproc_contract.errors import *  # noqa: F403 (the service's error classes are the client's: the same classes)
from rayproc_contract.errors import RayprocError, error_class

__all__ = sorted([
    *(name for name in _contract.__all__ if name not in ("ErrorBody", "RayprocError", "error_class")),
    "ClientError", "ConnectError", "RequestTimeout", "TaskError", "TaskFailedError", "TaskTimeoutError",
    "TransportError", "UnexpectedResponse",
])

#: Base of every error this package raises. It is the contract's root class itself, not a subclass: ``except``
#: matches by the real class tree, and ``except ClientError`` must also catch the service errors, which are the
#: contract's classes (shared with the service).
ClientError = RayprocError


class _SeenTask(Protocol):
    """What the task errors read of a task (a :class:`~rayproc_client.Task` or :class:`~rayproc_client.AsyncTask`)."""

    @property
    def uid(self) -> str: ...

    @property
    def info(self) -> Any: ...

    @property
    def status_name(self) -> str: ...

    @property
    def completion_percentage(self) -> float: ...


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

    def __init__(self, message: str, task: _SeenTask) -> None:
        super().__init__(message)
        self.task = task


class TaskFailedError(TaskError):
    """The task ended failed (status 3). ``error_type`` is the failure class (``input_not_found``, ``no_items``,
    ``job_died``, ...) and ``error_msg`` the service's message; resuming the task is possible."""

    error_code = "task_failed"

    def __init__(self, task: _SeenTask) -> None:
        self.error_type = task.info.error_type
        self.error_msg = task.info.error_msg
        super().__init__(f"task {task.uid} failed ({self.error_type}): {self.error_msg}", task)


class TaskTimeoutError(TaskError, TimeoutError):
    """``wait_till_done`` reached its timeout before the task finished; the task is still running on the
    service (waiting does not stop it)."""

    error_code = "task_timeout"

    def __init__(self, task: _SeenTask, timeout_seconds: float) -> None:
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
    return error_class(code, status)(message, status_code=status, error_code=code or f"http_{status}")


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
