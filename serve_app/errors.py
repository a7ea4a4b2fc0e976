"""Errors the API answers with. Every error body has one shape::

    {"error_code": "<stable code>", "error_msg": "<human message>"}

The hierarchy (status code, ``error_code``)::

    ServiceError                    500 internal_error
    ├── BadRequest                  400 bad_request
    │   ├── InvalidRequest          400 invalid_request      (malformed body or query)
    │   ├── InvalidResourceId       400 invalid_resource_id  (id fails the id rules)
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
    ├── RayUnavailable              503 ray_unavailable
    └── InternalError               500 internal_error
"""

from __future__ import annotations

import re

_ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]+$")
MAX_ID_LENGTH = 100


class ServiceError(Exception):
    status_code = 500
    code = "internal_error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error_code": self.code, "error_msg": self.message}


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class InvalidRequest(BadRequest):
    code = "invalid_request"


class InvalidResourceId(BadRequest):
    code = "invalid_resource_id"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class InvalidState(BadRequest):
    code = "invalid_state"


class PathNotAllowed(BadRequest):
    code = "path_not_allowed"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Token realm="rayproc", Bearer realm="rayproc"'}


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    code = "method_not_allowed"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class RayUnavailable(ServiceError):
    status_code = 503
    code = "ray_unavailable"


class InternalError(ServiceError):
    status_code = 500
    code = "internal_error"


def all_error_classes() -> list[type[ServiceError]]:
    seen, todo = [], [ServiceError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def validate_resource_id(value: str | None, kind: str = "task") -> str:
    """Validate an id as synapse-sdk's ``validate_resource_id`` does, rule by rule, in its order."""
    if value is None or value == "":
        raise InvalidResourceId(f"{kind} ID cannot be empty")
    if not _ID_PATTERN.fullmatch(value):
        raise InvalidResourceId(
            f"Invalid {kind} ID format: only letters, digits, '-' and '_' are allowed")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidResourceId(f"{kind} ID too long: {len(value)} characters, at most {MAX_ID_LENGTH}")
    return value
