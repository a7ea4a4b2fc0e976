"""The errors the API answers with, and the id rule routes check.

Both are the wire contract's, defined once for the service and the client: the error tree, its codes and the one
error body shape in :mod:`rayproc_contract.errors`, the id rule in :mod:`rayproc_contract.ids`. Routes import
them from here (``from serve_app import errors as E``); ``main`` renders every :class:`ServiceError` as
``{"error_code": ..., "error_msg": ...}`` with its ``status_code`` and ``headers``.
"""

from __future__ import annotations

from rayproc_contract import errors as _errors
from rayproc_contract.errors import *  # noqa: F403 (the whole tree, as the contract's __all__ names it)
from rayproc_contract.ids import validate_resource_id

__all__ = [*_errors.__all__, "validate_resource_id"]

#: What each error status means, as the OpenAPI document says it (the body is always :class:`ErrorBody`).
_MEANING = {
    400: "Bad input (invalid_request, invalid_resource_id, invalid_parameter, invalid_state, path_not_allowed).",
    401: "No token, a malformed one, or an unknown or revoked one (unauthorized).",
    403: "Your role does not allow this (forbidden).",
    404: "No such resource, or a project you do not belong to (not_found).",
    409: "Conflicts with the current state (conflict).",
    413: "The body is over the service's limit (payload_too_large).",
    415: "An upload in a format the service does not read (unsupported_media_type).",
    503: "Ray or the data directory is unavailable (ray_unavailable, storage_unavailable); nothing was changed.",
    507: "The data directory is full (insufficient_storage); nothing was changed.",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """FastAPI ``responses=`` for the error statuses an operation answers, each with the one error body."""
    return {code: {"model": _errors.ErrorBody, "description": _MEANING[code]} for code in sorted(set(codes))}


__all__ += ["error_responses"]
