"""Accounts and the cluster: ``/v1/...``. Managing users, tokens and projects is for service admins."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from jobs import launcher as L
from rayproc_contract.ids import ID_PATTERN, MAX_ID_LENGTH
from serve_app import errors as E
from serve_app.accounts import AccountError, AccountNotFound
from serve_app.auth import AccountsDep, Admin, Authenticated
from serve_app.deps import ServiceDep
from serve_app.schemas import ErrorBody

router = APIRouter(prefix="/v1", tags=["accounts and cluster"])

Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserCreate(_Body):
    name: Name
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


@router.get("/whoami")
def whoami(*, principal: Authenticated, accounts: AccountsDep) -> dict:
    """The caller, and the projects they can see with their role in each."""
    return {"name": principal.name, "is_admin": principal.is_admin, "projects": accounts.projects(principal)}


@router.get("/users")
def list_users(*, admin: Admin, accounts: AccountsDep) -> dict:
    """Every user."""
    return {"users": accounts.users()}


@router.post("/users", status_code=201)
def create_user(*, admin: Admin, accounts: AccountsDep, body: UserCreate) -> dict:
    """Create a user (no token yet)."""
    try:
        user = accounts.create_user(body.name, is_admin=body.is_admin)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"name": user.name, "is_admin": user.is_admin}


@router.post("/users/{user_name}/tokens", status_code=201)
def create_token(*, admin: Admin, accounts: AccountsDep, user_name: str, body: TokenCreate) -> dict:
    """Issue a token for a user. The token is in this answer only; store it now."""
    try:
        token_id, token = accounts.issue_token(user_name, body.name)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"token_id": token_id, "token": token, "user": user_name}


@router.get("/tokens")
def list_tokens(*, admin: Admin, accounts: AccountsDep) -> dict:
    """Every token's id, owner and state (never the token itself)."""
    return {"tokens": accounts.tokens()}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(*, admin: Admin, accounts: AccountsDep, token_id: str) -> Response:
    """Revoke a token at once."""
    try:
        accounts.revoke_token(token_id)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return Response(status_code=204)


@router.get("/projects")
def list_projects(*, principal: Authenticated, accounts: AccountsDep) -> dict:
    """Projects the caller can see (all of them, for admins)."""
    return {"projects": accounts.projects(principal)}


@router.post("/projects", status_code=201)
def create_project(*, admin: Admin, accounts: AccountsDep, body: ProjectCreate) -> dict:
    """Create a project."""
    try:
        accounts.create_project(body.project_id, body.name)
    except AccountError as exc:
        raise E.Conflict(str(exc)) from None
    return {"project_id": body.project_id, "name": body.name}


@router.put("/projects/{project_id}/members/{user_name}")
def set_member(*, admin: Admin, accounts: AccountsDep, project_id: str, user_name: str, body: Membership) -> dict:
    """Give a user a role in a project (or change it)."""
    try:
        accounts.set_role(project_id, user_name, body.role)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return {"project_id": project_id, "user": user_name, "role": body.role}


@router.delete("/projects/{project_id}/members/{user_name}", status_code=204)
def remove_member(*, admin: Admin, accounts: AccountsDep, project_id: str, user_name: str) -> Response:
    """Take a user out of a project."""
    try:
        accounts.remove_member(project_id, user_name)
    except AccountError as exc:
        raise _accounts_errors(exc) from None
    return Response(status_code=204)


class NodePublic(BaseModel):
    node_id: str
    alive: bool
    address: str | None = Field(description="The node's IP address.")
    is_head: bool
    resources: dict[str, float] = Field(description="What the node offers Ray (CPU, memory in bytes, GPU, ...).")
    available_resources: dict[str, float] = Field(description="What of it is free now.")
    utilisation: dict[str, float] = Field(description="Share of each resource in use, 0 to 1.")
    running_tasks: int = Field(description="rayproc runs whose job driver runs on this node (their chunks may "
                                           "run on any node).")
    dashboard_url: str = Field(description="The node's page in the Ray dashboard.")


class ClusterPublic(BaseModel):
    nodes: list[NodePublic]
    alive_nodes: int
    total_resources: dict[str, float]
    available_resources: dict[str, float]
    running_by_project: dict[str, int] = Field(description="Runs handed to Ray and not ended, by project.")
    queued_by_project: dict[str, int] = Field(description="Runs waiting in the admission queue, by project.")
    dashboard_url: str = Field(description="The Ray dashboard.")


class ClusterTaskPublic(BaseModel):
    task_id: str
    project_id: str
    task_type: str
    status: int = Field(description="0 initialized (queued or starting), 1 running.")
    run_id: str = Field(description="The current run's Ray submission id.")
    phase: Literal["queued", "submitting", "submitted"]
    queue_position: int | None = Field(description="1-based place in the admission queue while queued.")
    node_id: str | None = Field(description="The node the run's job driver runs on, once Ray placed it.")
    processed_count: int
    failed_count: int
    total_count: int | None
    dashboard_url: str | None = Field(description="The run's Ray job in the dashboard, once Ray has it.")


class ClusterTasksPublic(BaseModel):
    tasks: list[ClusterTaskPublic]
    count: int


_CLUSTER_ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 503)}


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
