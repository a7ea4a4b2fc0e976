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
