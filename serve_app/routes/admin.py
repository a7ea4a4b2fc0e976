"""Accounts and the cluster: ``/v1/...``. Managing users, tokens and projects is for service admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from jobs import launcher as L
from rayproc_contract.ids import ID_PATTERN, MAX_ID_LENGTH
from rayproc_contract.models import (
    ClusterPublic,
    ClusterTaskPublic,
    ClusterTasksPublic,
    NodePublic,
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
from serve_app.deps import ServiceDep, id_path

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


_CLUSTER_ERRORS = E.error_responses(400, 401, 403, 503)


def _resources(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if not k.startswith("node:")}


def _driver_nodes(service) -> dict[str, str]:
    """Run id -> node id of its job driver, for the runs Ray knows (empty when Ray does not answer)."""
    try:
        return {run_id: state.driver_node_id for run_id, state in service.reconciler.read_launcher.states().items()
                if state.driver_node_id and not state.is_terminal()}
    except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound):
        return {}


@router.get("/cluster", response_model=ClusterPublic, responses=_CLUSTER_ERRORS)
def cluster(*, admin: Admin, service: ServiceDep) -> ClusterPublic:
    """The Ray cluster's nodes with their resources and utilisation, and rayproc's runs per node and project."""
    import ray
    from ray._private import state as ray_state  # per-node free resources: no public call gives them

    try:
        nodes = ray.nodes()
        free = ray_state.available_resources_per_node()
        total, available = ray.cluster_resources(), ray.available_resources()
    except Exception as exc:  # Ray not initialised here, or the GCS unreachable
        raise E.RayUnavailable(f"cannot read the cluster state: {type(exc).__name__}") from None
    drivers = _driver_nodes(service)
    per_node: dict[str, int] = {}
    for node_id in drivers.values():
        per_node[node_id] = per_node.get(node_id, 0) + 1
    running, by_project = service.store.running_counts()
    queued: dict[str, int] = {}
    for rec in service.store.active_tasks():
        if service.store.run_phase(rec.current_run)[0] == "queued":
            queued[rec.project_id] = queued.get(rec.project_id, 0) + 1
    base = service.dashboard_job_url("x").removesuffix("/#/jobs/x")
    out = []
    for node in nodes:
        resources = _resources(node.get("Resources", {}))
        node_free = _resources(free.get(node["NodeID"], {})) if node["Alive"] else {}
        out.append(NodePublic(
            node_id=node["NodeID"], alive=bool(node["Alive"]), address=node.get("NodeManagerAddress"),
            is_head="node:__internal_head__" in node.get("Resources", {}), resources=resources,
            available_resources=node_free,
            utilisation={k: round(1 - node_free.get(k, 0.0) / v, 4) for k, v in resources.items() if v and node["Alive"]},
            running_tasks=per_node.get(node["NodeID"], 0), dashboard_url=f"{base}/#/cluster/nodes/{node['NodeID']}"))
    return ClusterPublic(nodes=out, alive_nodes=sum(n.alive for n in out), total_resources=_resources(total),
                         available_resources=_resources(available), running_by_project=by_project,
                         queued_by_project=queued, dashboard_url=base)


@router.get("/cluster/tasks", response_model=ClusterTasksPublic, responses=_CLUSTER_ERRORS)
def cluster_tasks(*, admin: Admin, service: ServiceDep) -> ClusterTasksPublic:
    """Every running and queued task of every project: where its driver runs and its dashboard link."""
    drivers = _driver_nodes(service)
    records = service.store.active_tasks()
    positions = service.store.queue_positions(r.current_run for r in records)
    tasks = []
    for rec in records:
        phase = service.store.run_phase(rec.current_run)[0]
        tasks.append(ClusterTaskPublic(
            task_id=rec.task_id, project_id=rec.project_id, task_type=rec.task_type, status=int(rec.status),
            run_id=rec.current_run, phase=phase, queue_position=positions.get(rec.current_run),
            node_id=drivers.get(rec.current_run), processed_count=rec.processed_count,
            failed_count=rec.failed_count, total_count=rec.total_count,
            dashboard_url=service.dashboard_job_url(rec.current_run) if phase == "submitted" else None))
    tasks.sort(key=lambda t: (t.phase != "submitted", t.queue_position or 0, t.project_id, t.task_id))
    return ClusterTasksPublic(tasks=tasks, count=len(tasks))
