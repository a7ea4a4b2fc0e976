"""Every endpoint x every kind of caller, against the real service with real tokens."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Service
from tests.serve_app.test_imports import _wait_import
from tests.support.images import make_many

pytestmark = pytest.mark.ray

P, OTHER = "authz", "authz-other"
CALLERS = ["none", "bad", "garbage", "viewer", "member", "other", "admin"]
WELL_FORMED_UNKNOWN = "rpt_0123456789abcdef." + "A" * 43


@dataclass
class World:
    clients: dict[str, httpx.Client]
    task_id: str  # a completed task in P
    throwaway: dict[str, str]  # caller -> a completed task in P it may delete
    folder: str
    import_id: int
    item_id: int  # an item (Label Studio task) of that import


@pytest.fixture(scope="module")
def world(service: Service) -> World:
    acc = service.accounts
    for project in (P, OTHER, "authz-spare"):
        acc.create_project(project)
    tokens = {}
    for name, admin in (("viewer", False), ("member", False), ("other", False), ("admin", True), ("spare", False)):
        acc.create_user(f"authz-{name}", is_admin=admin)
        tokens[name] = acc.issue_token(f"authz-{name}")[1]
    acc.set_role(P, "authz-viewer", "viewer")
    acc.set_role(P, "authz-member", "member")
    acc.set_role(OTHER, "authz-other", "member")
    acc.set_role("authz-spare", "authz-spare", "viewer")
    tokens.update({"none": None, "bad": WELL_FORMED_UNKNOWN, "garbage": "not-a-token"})
    clients = {name: service.client_for(tokens.get(name)) for name in CALLERS}

    folder = service.root / "inputs" / "authz"
    folder.mkdir(parents=True)
    make_many(folder, 1)
    ids = [service.create(folder, project=P) for _ in range(3)]
    for task_id in ids:
        service.wait_status(task_id, 2, allowed={0, 1}, project=P)
    import_id = service.client.post(f"/api/projects/{P}/import?return_task_ids=true",
                                    json=[{"text": "x"}]).json()["import"]
    status = _wait_import(service, import_id, project=P)
    return World(clients, ids[0], {"member": ids[1], "admin": ids[2]}, str(folder), import_id, status["task_ids"][0])


def _create_body(world: World) -> dict:
    return {"name": "authz", "data_source": {"type": "OBS", "source": world.folder},
            "template": {"id": "sys_data_analyse"}}


# endpoint -> (method, path, body, expected status per caller; callers left out expect 401/403/404 by rule)
ENDPOINTS = {
    "list": ("GET", f"/v2/{P}/processor-tasks", None, {"viewer": 200, "member": 200, "admin": 200}),
    "get": ("GET", f"/v2/{P}/processor-tasks/{{task}}", None, {"viewer": 200, "member": 200, "admin": 200}),
    "create": ("POST", f"/v2/{P}/processor-tasks", "create", {"member": 200, "admin": 200}),
    "stop": ("POST", f"/v2/{P}/processor-tasks/{{task}}/stop", None, {"member": 400, "admin": 400}),
    "resume": ("POST", f"/v2/{P}/processor-tasks/{{task}}/resume", None, {"member": 400, "admin": 400}),
    "delete": ("DELETE", f"/v2/{P}/processor-tasks/{{throwaway}}", None, {"member": 204, "admin": 204}),
    "templates": ("GET", f"/v2/{P}/processor-templates", None, {"viewer": 200, "member": 200, "admin": 200}),
    "template_items": ("GET", f"/v2/{P}/processor-tasks/items", None, {"viewer": 200, "member": 200, "admin": 200}),
    "report": ("GET", f"/v2/{P}/processor-tasks/{{task}}/report", None, {"viewer": 200, "member": 200, "admin": 200}),
    "logs": ("GET", f"/v2/{P}/processor-tasks/{{task}}/logs", None, {"viewer": 200, "member": 200, "admin": 200}),
    "task_file": ("GET", f"/v2/{P}/processor-tasks/{{task}}/files/features.jsonl", None,
                  {"viewer": 200, "member": 200, "admin": 200}),
    "import": ("POST", f"/api/projects/{P}/import", [{"text": "authz"}], {"member": 201, "admin": 201}),
    "get_import": ("GET", f"/api/projects/{P}/imports/{{import_id}}/", None,
                   {"viewer": 200, "member": 200, "admin": 200}),
    "datasets": ("GET", f"/v2/{P}/datasets", None, {"viewer": 200, "member": 200, "admin": 200}),
    "ls_projects": ("GET", "/api/projects/", None, {"viewer": 200, "member": 200, "other": 200, "admin": 200}),
    "ls_project": ("GET", f"/api/projects/{P}/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "ls_tasks": ("GET", f"/api/tasks/?project={P}", None, {"viewer": 200, "member": 200, "admin": 200}),
    "ls_task": ("GET", "/api/tasks/{item_id}/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "ls_reimport": ("POST", f"/api/projects/{P}/reimport", {"file_upload_ids": "{import_id}"},
                    {"member": 400, "admin": 400}),  # the import was committed as it ran
    "agent_jobs": ("GET", f"/agent/v1/{P}/jobs/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "agent_job": ("GET", f"/agent/v1/{P}/jobs/{{task}}/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "agent_logs": ("GET", f"/agent/v1/{P}/jobs/{{task}}/logs/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "agent_log_stream": ("GET", f"/agent/v1/{P}/jobs/{{task}}/logs/stream/", None,
                         {"viewer": 200, "member": 200, "admin": 200}),
    "agent_stop": ("POST", f"/agent/v1/{P}/jobs/{{task}}/stop/", None, {"member": 400, "admin": 400}),
    "agent_resume": ("POST", f"/agent/v1/{P}/jobs/{{task}}/resume/", None, {"member": 400, "admin": 400}),
    "agent_health": ("GET", f"/agent/v1/{P}/health/", None, {"viewer": 200, "member": 200, "admin": 200}),
    "whoami": ("GET", "/v1/whoami", None, {"viewer": 200, "member": 200, "other": 200, "admin": 200}),
    "projects": ("GET", "/v1/projects", None, {"viewer": 200, "member": 200, "other": 200, "admin": 200}),
    "users": ("GET", "/v1/users", None, {"admin": 200}),
    "create_user": ("POST", "/v1/users", {"name": "authz-made-by-{caller}"}, {"admin": 201}),
    "create_token": ("POST", "/v1/users/authz-spare/tokens", {"name": "x"}, {"admin": 201}),
    "tokens": ("GET", "/v1/tokens", None, {"admin": 200}),
    "revoke_token": ("DELETE", "/v1/tokens/0000000000000000", None, {"admin": 404}),
    "create_project": ("POST", "/v1/projects", {"project_id": "authz-new-{caller}"}, {"admin": 201}),
    "set_member": ("PUT", "/v1/projects/authz-spare/members/authz-spare", {"role": "viewer"}, {"admin": 200}),
    "cluster": ("GET", "/v1/cluster", None, {"admin": 200}),
}
PROJECT_ENDPOINTS = {"list", "get", "create", "stop", "resume", "delete", "templates", "template_items", "report",
                     "logs", "task_file", "import", "get_import", "datasets", "ls_project", "ls_tasks", "ls_task", "ls_reimport",
                     "agent_jobs", "agent_job", "agent_logs", "agent_log_stream", "agent_stop", "agent_resume",
                     "agent_health"}


def _expected(endpoint: str, caller: str) -> int:
    allowed = ENDPOINTS[endpoint][3]
    if caller in ("none", "bad", "garbage"):
        return 401
    if caller in allowed:
        return allowed[caller]
    if endpoint in PROJECT_ENDPOINTS and caller == "other":
        return 404  # not a member: the project and its tasks do not exist for them
    return 403


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_authorization_matrix(world: World, endpoint: str, caller: str) -> None:
    method, path, body, _ = ENDPOINTS[endpoint]
    path = path.format(task=world.task_id, throwaway=world.throwaway.get(caller, world.task_id),
                       import_id=world.import_id, item_id=world.item_id)
    if body == "create":
        body = _create_body(world)
    elif body == {"file_upload_ids": "{import_id}"}:
        body = {"file_upload_ids": [world.import_id]}
    elif isinstance(body, dict):
        body = {k: v.format(caller=caller) if isinstance(v, str) else v for k, v in body.items()}
    r = world.clients[caller].request(method, path, json=body)
    expected = _expected(endpoint, caller)
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert r.json()["error_code"] in {400: "invalid_state", 401: "unauthorized", 403: "forbidden",
                                          404: "not_found"}[expected] or endpoint == "revoke_token"
    if expected == 401:
        assert r.headers["WWW-Authenticate"].startswith("Token")
    if caller == "other":
        assert world.task_id not in r.text and P + '"' not in r.text  # nothing of P leaks


def test_bearer_is_accepted_and_revoked_tokens_stop_working(service: Service, world: World) -> None:
    _, token = service.accounts.issue_token("authz-member", "short-lived")
    bearer = httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"})
    assert bearer.get(f"/v2/{P}/processor-tasks").status_code == 200
    token_id = token.split(".")[0].removeprefix("rpt_")
    assert service.client.delete(f"/v1/tokens/{token_id}").status_code == 204
    r = bearer.get(f"/v2/{P}/processor-tasks")
    assert r.status_code == 401 and r.json()["error_msg"] == "invalid or revoked token"


def test_other_members_see_only_their_projects(world: World) -> None:
    projects = world.clients["other"].get("/v1/projects").json()["projects"]
    assert [p["project_id"] for p in projects] == [OTHER]
    assert world.clients["other"].get(f"/v2/{OTHER}/processor-tasks").json() == {"count": 0, "tasks": []}
    viewer = world.clients["viewer"].get("/v1/whoami").json()
    assert viewer["projects"] == [{"project_id": P, "name": "", "role": "viewer"}]


def test_tokens_are_not_stored_or_listed_in_clear(service: Service, world: World) -> None:
    import sqlite3

    _, token = service.accounts.issue_token("authz-spare", "audit")
    secret = token.split(".", 1)[1]
    dump = "\n".join(sqlite3.connect(service.settings.db_path).iterdump())
    assert secret not in dump
    listing = service.client.get("/v1/tokens").text
    assert secret not in listing and "digest" not in listing
