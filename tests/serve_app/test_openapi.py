"""The OpenAPI document says what the service answers; and the routing edges it promises (405 with Allow, a
trailing newline is a 400, trailing slashes on the task routes). The real app, database and auth, in-process;
Ray is an address where nothing listens (nothing here needs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from jobs.launcher import JobLauncher
from jobs.store import Store
from rayproc_contract.ids import ID_PATTERN, MAX_ID_LENGTH
from rayproc_contract.status import TaskType
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.settings import Settings
from tests.support.cluster import free_port

ERROR_REF = "#/components/schemas/ErrorBody"
#: Operations that are another change's to type (their answers are still bare objects).
UNTYPED_TAGS: set[str] = set()  # every tag is typed


class App:
    def __init__(self, root: Path) -> None:
        settings = Settings(data_dir=root / "data", allowed_roots=[str(root)]).resolved()
        accounts = Accounts(settings.db_path)
        accounts.create_user("admin", is_admin=True)
        accounts.create_project("p1")
        self.token = accounts.issue_token("admin")[1]
        service = build_service(settings, store=Store(settings.db_path),
                                launcher=JobLauncher(f"http://127.0.0.1:{free_port()}", submit_retry_seconds=0))
        self.client = TestClient(create_app(service, accounts), raise_server_exceptions=False,
                                 headers={"Authorization": f"Token {self.token}"})
        self.doc = self.client.get("/openapi.json").json()

    def operations(self):
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                yield path, method, op


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    return App(tmp_path_factory.mktemp("openapi"))


def test_no_operation_documents_fastapis_422(app: App) -> None:
    assert "422" not in {code for _, _, op in app.operations() for code in op["responses"]}
    assert "HTTPValidationError" not in app.doc["components"]["schemas"]
    assert app.client.post("/v2/p1/processor-tasks", json={}).status_code == 400  # what it answers instead


def test_every_error_answer_is_the_one_error_body_as_json(app: App) -> None:
    errors = 0
    for path, method, op in app.operations():
        assert "400" in op["responses"], (method, path)
        for code, response in op["responses"].items():
            if code >= "400":
                errors += 1
                assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (path, code)
    assert errors > 150
    # The report's and the logs' errors are JSON too, though their answers are HTML and text.
    report = app.doc["paths"]["/v2/{project_id}/processor-tasks/{task_id}/report"]["get"]["responses"]
    assert list(report["200"]["content"]) == ["text/html"] and "application/json" in report["404"]["content"]
    body = app.client.get("/v2/p1/processor-tasks/nope/report")
    assert body.status_code == 404 and body.headers["content-type"] == "application/json"


def test_every_route_but_health_needs_the_token_and_says_how(app: App) -> None:
    schemes = app.doc["components"]["securitySchemes"]
    assert schemes["Token"] == {"type": "apiKey", "in": "header", "name": "Authorization",
                                "description": schemes["Token"]["description"]}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    anonymous = TestClient(app.client.app, raise_server_exceptions=False)
    for path, method, op in app.operations():
        if path in ("/healthz", "/-/healthz", "/-/readyz", "/metrics"):  # for probes and scrapers: no token
            assert "security" not in op
            continue
        assert op["security"] == [{"Token": []}, {"Bearer": []}], (method, path)
        assert "401" in op["responses"], (method, path)
    assert anonymous.get("/v1/whoami").status_code == 401
    bearer = anonymous.get("/v1/whoami", headers={"Authorization": f"Bearer {app.token}"})
    assert bearer.status_code == 200 and bearer.json()["name"] == "admin"


def test_every_answer_is_typed(app: App) -> None:
    for path, method, op in app.operations():
        if UNTYPED_TAGS & set(op.get("tags", [])):
            continue
        ok = next(code for code in op["responses"] if code < "400")
        if ok == "204":
            continue
        content = op["responses"][ok]["content"]
        schema = next(iter(content.values()))["schema"]
        if "application/json" in content and schema.get("type") != "string":
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path, schema)
    schemas = app.doc["components"]["schemas"]
    import_answer = app.doc["paths"]["/api/projects/{project_id}/import"]["post"]["responses"]["201"]
    assert import_answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ImportCreated"}
    assert "import" in schemas["ImportCreated"]["properties"]
    jobs = app.doc["paths"]["/agent/v1/{project_id}/jobs/"]["get"]["responses"]["200"]
    assert jobs["content"]["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/AgentJob"}


def test_request_bodies_are_typed(app: App) -> None:
    schemas = app.doc["components"]["schemas"]
    create = schemas["ProcessorTaskCreate"]
    assert [alt["required"] for alt in create["anyOf"]] == [["data_source"], ["inputs"]]
    assert schemas["TemplateParam"]["properties"]["id"]["enum"] == [t.value for t in TaskType]
    body = app.doc["paths"]["/api/projects/{project_id}/import"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    shapes = body["application/json"]["schema"]["anyOf"]
    assert shapes[0]["items"] == {"$ref": "#/components/schemas/ImportItem"}
    assert shapes[1] == {"$ref": "#/components/schemas/ImportFolder"}
    assert set(schemas["ImportFolder"]["properties"]) == {"folder", "recursive", "metadata_sheet"}


def test_path_ids_carry_the_id_rule(app: App) -> None:
    ids = 0
    for path, _, op in app.operations():
        if UNTYPED_TAGS & set(op.get("tags", [])):
            continue
        for param in op.get("parameters", []):
            if param["in"] == "path" and param["name"] in ("project_id", "task_id", "job_id", "dataset_id",
                                                           "version_id"):
                ids += 1
                if path.startswith("/api/tasks/"):  # Label Studio's task ids are numbers
                    assert param["schema"]["pattern"] == "^[0-9]{1,18}$", (path, param)
                    continue
                assert param["schema"]["pattern"] == ID_PATTERN.pattern, (path, param)
                assert param["schema"]["maxLength"] == MAX_ID_LENGTH
    assert ids > 40
    # The longest id the rule allows is not refused as an id: it is looked up (and not found).
    longest = "a" * MAX_ID_LENGTH
    r = app.client.get(f"/v2/p1/processor-tasks/{longest}")
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"
    pattern = re.compile(ID_PATTERN.pattern.replace("$", r"\Z"))
    assert pattern.match(longest) and not pattern.match("abc\n")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/v2/p1/processor-tasks", "GET, POST"),
    ("PATCH", "/v2/p1/processor-tasks/abc", "DELETE, GET"),
    ("DELETE", "/v1/whoami", "GET"),
    ("GET", "/v2/p1/processor-tasks/abc/resume", None),  # a GET there is the task "abc/resume": a 400
])
def test_405_says_which_methods_are_allowed(app: App, method: str, path: str, allowed: str | None) -> None:
    r = app.client.request(method, path)
    if allowed is None:
        assert r.status_code == 400 and r.json()["error_code"] == "invalid_resource_id"
        return
    assert r.status_code == 405 and r.headers["allow"] == allowed
    assert r.json()["error_code"] == "method_not_allowed" and allowed in r.json()["error_msg"]


@pytest.mark.parametrize("path", [
    "/v2/p1/processor-tasks/abc%0A", "/v2/p1/processor-tasks/abc%0A/stop", "/v2/p1/processor-tasks%0A",
    "/v2/p1%0A/processor-tasks", "/agent/v1/p1/jobs/abc%0A/", "/v2/p1/processor-tasks/abc%00",
])
def test_a_control_character_in_the_path_is_a_400_not_another_id(app: App, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        r = app.client.request(method, path)
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["error_code"] == "invalid_resource_id"


def test_task_routes_take_a_trailing_slash(app: App) -> None:
    listed = app.client.get("/v2/p1/processor-tasks/")
    assert listed.status_code == 200 and listed.json() == app.client.get("/v2/p1/processor-tasks").json()
    for method, path in [("GET", "abc/"), ("DELETE", "abc/"), ("POST", "abc/stop/"), ("POST", "abc/resume/"),
                         ("GET", "abc/report/"), ("GET", "abc/logs/")]:
        r = app.client.request(method, f"/v2/p1/processor-tasks/{path}")
        assert r.status_code == 404, (method, path, r.text)
        assert "'abc'" in r.json()["error_msg"] or " abc " in r.json()["error_msg"], r.text
    # Still one id: two slashes, or one inside, are not a task.
    assert app.client.get("/v2/p1/processor-tasks/abc//").json()["error_code"] == "invalid_resource_id"
    assert app.client.post("/v2/p1/processor-tasks/", json={}).json()["error_code"] == "invalid_request"
