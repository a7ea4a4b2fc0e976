"""Accounts and the cluster: ``/v1/...``. Managing users, tokens and projects is for service admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from rayproc_contract.ids import ID_PATTERN, MAX_ID_LENGTH
from rayproc_contract.models import (
    ClusterPublic,
    MemberSet,
    ProjectCreated,
    ProjectsPublic,
    TokenIssued,
    TokensPublic,
    UserPublic,
    UsersPublic,
    WhoAmI,
)
from serve_app import errors as E
from serve_app.accounts import AccountError, AccountNotFound
from serve_app.auth import AccountsDep, Admin, Authenticated
from serve_app.deps import id_path

#: Every route: a bad query or body, no token. Admin routes: not an admin.
_AUTH = E.error_responses(400, 401)
_ADMIN = E.error_responses(400, 401, 403)
_ADMIN_WRITE = E.error_responses(400, 401, 403, 404, 413, 503, 507)
#: The names' and ids' rules, for the document; the accounts check them with their own messages.
_USER_NAME = {"pattern": r"^[a-zA-Z0-9\-_.@]{1,64}$", "minLength": 1, "maxLength": 64}
ProjectId = id_path("project")
TokenId = Annotated[str, Path(description="The token's id.", json_schema_extra={"pattern": "^[0-9a-f]{1,64}$"})]
UserName = Annotated[str, Path(description="The user's name.", json_schema_extra=_USER_NAME)]

router = APIRouter(prefix="/v1", tags=["accounts and cluster"])

Name = Annotated[str, Field(min_length=1, max_length=64)]
UserNameField = Annotated[str, Field(min_length=1, max_length=64, json_schema_extra={"pattern": _USER_NAME["pattern"]})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Body):
    name: UserNameField
    is_admin: bool = False


class TokenCreate(_Body):
    name: Annotated[str, Field(max_length=64)] = ""


class ProjectCreate(_Body):
    project_id: Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN.pattern)]
    name: Annotated[str, Field(max_length=64)] = ""


class Membership(_Body):
    role: Literal["viewer", "member"]


def _accounts_errors(exc: AccountError) -> E.ServiceError:
    return E.NotFound(str(exc)) if isinstance(exc, AccountNotFound) else E.InvalidParameter(str(exc))


@router.get("/whoami", response_model=WhoAmI, responses=_AUTH)
def whoami(*, principal: Authenticated, accounts: AccountsDep) -> dict:
    """The caller, and the projects they can see with their role in each."""
    return {"name": principal.name, "is_admin": principal.is_admin, "projects": accounts.projects(principal)}


@router.get("/users", response_model=UsersPublic, responses=_ADMIN)
def list_users(*, admin: Admin, accounts: AccountsDep) -> dict:
    """Every user."""
    return {"users": accounts.users()}


@router.post("/users", status_code=201, response_model=UserPublic, response_model_exclude_unset=True,
             responses=_ADMIN_WRITE)
def create_user(*, admin: Admin, accounts: AccountsDep, body: UserCreate) -> dict:
    """Create a user (no token yet)."""
    try:
        user = accounts.create_user(body.name, is_admin=body.is_admin)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"name": user.name, "is_admin": user.is_admin}


@router.post("/users/{user_name}/tokens", status_code=201, response_model=TokenIssued,
             responses=_ADMIN_WRITE)
def create_token(*, admin: Admin, accounts: AccountsDep, user_name: UserName, body: TokenCreate) -> dict:
    """Issue a token for a user. The token is in this answer only; store it now."""
    try:
        token_id, token = accounts.issue_token(user_name, body.name)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"token_id": token_id, "token": token, "user": user_name}


@router.get("/tokens", response_model=TokensPublic, responses=_ADMIN)
def list_tokens(*, admin: Admin, accounts: AccountsDep) -> dict:
    """Every token's id, owner and state (never the token itself)."""
    return {"tokens": accounts.tokens()}


@router.delete("/tokens/{token_id}", status_code=204, responses=_ADMIN_WRITE)
def revoke_token(*, admin: Admin, accounts: AccountsDep, token_id: TokenId) -> Response:
    """Revoke a token at once."""
    try:
        accounts.revoke_token(token_id)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return Response(status_code=204)


@router.get("/projects", response_model=ProjectsPublic, responses=_AUTH)
def list_projects(*, principal: Authenticated, accounts: AccountsDep) -> dict:
    """Projects the caller can see (all of them, for admins)."""
    return {"projects": accounts.projects(principal)}


@router.post("/projects", status_code=201, response_model=ProjectCreated,
             responses=E.error_responses(400, 401, 403, 409, 413, 503, 507))
def create_project(*, admin: Admin, accounts: AccountsDep, body: ProjectCreate) -> dict:
    """Create a project."""
    try:
        accounts.create_project(body.project_id, body.name)
    except AccountError as exc:
        raise E.Conflict(str(exc)) from None
    return {"project_id": body.project_id, "name": body.name}


@router.put("/projects/{project_id}/members/{user_name}", response_model=MemberSet,
            responses=_ADMIN_WRITE)
def set_member(*, admin: Admin, accounts: AccountsDep, project_id: ProjectId, user_name: UserName,
               body: Membership) -> dict:
    """Give a user a role in a project (or change it)."""
    try:
        accounts.set_role(project_id, user_name, body.role)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"project_id": project_id, "user": user_name, "role": body.role}


@router.delete("/projects/{project_id}/members/{user_name}", status_code=204, responses=_ADMIN_WRITE)
def remove_member(*, admin: Admin, accounts: AccountsDep, project_id: ProjectId, user_name: UserName) -> Response:
    """Take a user out of a project."""
    try:
        accounts.remove_member(project_id, user_name)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return Response(status_code=204)


@router.get("/cluster", response_model=ClusterPublic, responses=E.error_responses(400, 401, 403, 503))
def cluster(*, admin: Admin) -> dict:
    """The Ray cluster's nodes and resources."""
    from jobs.cluster import cluster_summary

    try:
        return cluster_summary()
    except Exception as exc:  # Ray not initialised here, or the GCS unreachable
        raise E.RayUnavailable(f"cannot read the cluster state: {type(exc).__name__}") from None
