"""The id rule every resource id in a path follows (tasks, projects, datasets, versions).

The rules and their order are synapse-sdk's ``validate_resource_id``: empty, then the characters, then the length,
each with its own message. The service answers a broken id with :class:`~rayproc_contract.errors.InvalidResourceId`
(400); the client raises the same error, with the same message, before sending anything.
"""

from __future__ import annotations

import re

from rayproc_contract.errors import InvalidResourceId

__all__ = ["ID_PATTERN", "MAX_ID_LENGTH", "validate_resource_id"]

ID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]+$")
MAX_ID_LENGTH = 100


def validate_resource_id(value: object, kind: str = "task") -> str:
    """``value`` if it is a valid id; else :class:`InvalidResourceId` naming ``kind`` ("task", "project" ...)."""
    if value is None or value == "":
        raise InvalidResourceId(f"{kind} ID cannot be empty")
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidResourceId(f"Invalid {kind} ID format: only letters, digits, '-' and '_' are allowed")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidResourceId(f"{kind} ID too long: {len(value)} characters, at most {MAX_ID_LENGTH}")
    return value
