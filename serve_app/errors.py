"""The errors the API answers with, and the id rule routes check.

Both are the wire contract's, defined once for the service and the client: the error tree, its codes and the one
error body shape in :mod:`rayproc_contract.errors`, the id rule in :mod:`rayproc_contract.ids`. Routes import
them from here (``from serve_app import errors as E``); ``main`` renders every :class:`ServiceError` as
``{"error_code": ..., "error_msg": ...}`` with its ``status_code`` and ``headers``.
"""

from __future__ import annotations

from rayproc_contract.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    InvalidParameter,
    InvalidRequest,
    InvalidResourceId,
    InvalidState,
    MethodNotAllowed,
    NotFound,
    PathNotAllowed,
    PayloadTooLarge,
    RayUnavailable,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from rayproc_contract.ids import validate_resource_id

__all__ = [
    "BadRequest",
    "Conflict",
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
    "ServiceError",
    "Unauthorized",
    "UnsupportedMediaType",
    "validate_resource_id",
]
