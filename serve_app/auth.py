"""Who is calling, and may they touch this project.

Every API route depends on one of :data:`Reader`, :data:`Writer` or :data:`Admin`.
A project the caller does not belong to answers 404 exactly like one that does
not exist, so ids cannot be probed across projects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from serve_app import errors as E
from rayproc_contract.ids import ID_PATTERN, MAX_ID_LENGTH
from serve_app.accounts import DEV_PRINCIPAL, ROLE_ACTIONS, Accounts, Principal

_SCHEMES = ("token", "bearer")

# The two ways to send a token, as the OpenAPI document declares them (Swagger's Authorize button, generated
# clients). They only document: current_principal reads the header itself (it also refuses a repeated one).
TOKEN_SCHEME = APIKeyHeader(name="Authorization", scheme_name="Token", auto_error=False,
                            description="The whole header value: `Token <token>`.")
BEARER_SCHEME = HTTPBearer(scheme_name="Bearer", auto_error=False,
                           description="The token alone; it is sent as `Authorization: Bearer <token>`.")


def get_accounts(request: Request) -> Accounts:
    return request.app.state.accounts


def current_principal(request: Request,
                      _token: Annotated[object, Security(TOKEN_SCHEME)] = None,
                      _bearer: Annotated[object, Security(BEARER_SCHEME)] = None) -> Principal:
    if not request.app.state.auth_enabled:
        return DEV_PRINCIPAL
    values = request.headers.getlist("authorization")
    if not values:
        raise E.Unauthorized("missing Authorization header: send 'Authorization: Token <token>'")
    if len(values) > 1:
        raise E.Unauthorized("more than one Authorization header")
    scheme, _, credential = values[0].strip().partition(" ")
    if scheme.lower() not in _SCHEMES or not credential.strip():
        raise E.Unauthorized("the Authorization header must read 'Token <token>' or 'Bearer <token>'")
    principal = get_accounts(request).authenticate(credential.strip())
    if principal is None:
        raise E.Unauthorized("invalid or revoked token")
    return principal


#: The id rule as JSON Schema (for the document; the route checks the rule itself, with its own messages).
ID_SCHEMA = {"pattern": ID_PATTERN.pattern, "minLength": 1, "maxLength": MAX_ID_LENGTH}


@dataclass(frozen=True)
class ProjectAccess:
    project_id: str
    principal: Principal
    role: str


def project_access(project_id: str, action: str, request: Request, principal: Principal) -> ProjectAccess:
    """May ``principal`` do ``action`` in ``project_id``? For routes that name the project elsewhere
    than in their path (Label Studio's ``?project=``, a task's own project)."""
    E.validate_resource_id(project_id, "project")
    accounts = get_accounts(request)
    if not request.app.state.auth_enabled:
        accounts.ensure_project(project_id)  # development mode: projects appear on first use
        return ProjectAccess(project_id, principal, "admin")
    role = accounts.role_in(principal, project_id)
    if role is None:
        raise E.NotFound(f"project {project_id!r} not found")
    if role != "admin" and action not in ROLE_ACTIONS[role]:
        raise E.Forbidden(f"your role in project {project_id!r} is {role}; it does not allow this")
    return ProjectAccess(project_id, principal, role)


def _project_access(action: str):
    def dependency(project_id: Annotated[str, Path(description="The project's id.", json_schema_extra=ID_SCHEMA)],
                   request: Request,
                   principal: Annotated[Principal, Depends(current_principal)]) -> ProjectAccess:
        return project_access(project_id, action, request, principal)

    return dependency


def _admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise E.Forbidden("only service administrators may do this")
    return principal


Reader = Annotated[ProjectAccess, Depends(_project_access("read"))]
Writer = Annotated[ProjectAccess, Depends(_project_access("write"))]
Admin = Annotated[Principal, Depends(_admin)]
Authenticated = Annotated[Principal, Depends(current_principal)]
AccountsDep = Annotated[Accounts, Depends(get_accounts)]
