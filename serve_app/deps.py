"""Shared route dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from serve_app import errors as E
from serve_app.auth import ID_SCHEMA
from serve_app.service import TaskService

#: Query parameters that are lists by design and may repeat with different values.
LIST_PARAMETERS = frozenset({"version_id", "preannotated_from_fields"})


def get_service(request: Request) -> TaskService:
    return request.app.state.service


def reject_conflicting_repeats(request: Request) -> None:
    """A scalar query parameter given twice with different values is ambiguous: say so.

    The same value twice is accepted (proxies and retry layers do that)."""
    seen: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in LIST_PARAMETERS:
            continue
        if key in seen and seen[key] != value:
            raise E.InvalidRequest(
                f"query parameter {key!r} was given more than once with different values "
                f"({seen[key]!r} and {value!r}); give it once")
        seen[key] = value


ServiceDep = Annotated[TaskService, Depends(get_service)]


def id_path(kind: str):
    """A path id documented with the id rule. The route checks it with the rule itself (a 400
    ``invalid_resource_id`` naming ``kind``), so the document's pattern is a promise, not the check."""
    return Annotated[str, Path(description=f"The {kind}'s id.", json_schema_extra=ID_SCHEMA)]

