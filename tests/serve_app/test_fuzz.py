"""Property-based: random ids, query strings, bodies, paths and headers never cause a 500, a
traceback, or a write. The real app, real database and real auth run in-process; Ray is an
address where nothing listens, so a request that passes every check ends in a clean 503."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.launcher import JobLauncher
from jobs.store import Store
from rayproc_contract.query import ListQuery
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.settings import Settings
from tests.support.cluster import free_port
from tests.support.images import make_many

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIST_PARAMS = ["limit", "offset", "order", "sort_by", "status", "task_type", "task_name", "source", "source_type",
               "version_id", "workspace_id", "query_current", "return_result", "unknown"]


class Fuzzed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.settings = Settings(data_dir=root / "data", allowed_roots=[str(root)]).resolved()
        self.store = Store(self.settings.db_path)
        accounts = Accounts(self.settings.db_path)
        accounts.create_user("fuzz-admin", is_admin=True)
        accounts.create_project("p1")
        token = accounts.issue_token("fuzz-admin")[1]
        self.accepted = 0  # valid creates: queued (no Ray call on the create path), so recorded
        self.service = service = build_service(self.settings, store=self.store, launcher=JobLauncher(
            f"http://127.0.0.1:{free_port()}", submit_retry_seconds=0))
        self.client = TestClient(create_app(service, accounts), raise_server_exceptions=False,
                                 headers={"Authorization": f"Token {token}"})
        self.folder = root / "images"
        make_many(self.folder, 2)
        self.files_before = self.files()

    def files(self) -> set[str]:
        return {str(p) for p in self.root.rglob("*") if "data" not in p.relative_to(self.root).parts[:1]}

    def check(self, r) -> None:
        assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text)
        assert "Traceback" not in r.text and 'File "' not in r.text
        if r.status_code >= 400:
            body = r.json()
            assert set(body) == {"error_code", "error_msg"} and body["error_msg"]
        if r.status_code == 200 and r.request.method == "POST" and r.request.url.path.endswith("/processor-tasks"):
            self.accepted += 1
            task = self.client.get(f"/v2/p1/processor-tasks/{r.json()['task_id']}").json()
            assert task["status"] == 0 and task["queue_position"] is not None
        assert self.store.list_tasks("p1", ListQuery(limit=1))[0] == self.accepted, "bad input must record nothing"
        assert self.files() == self.files_before, "nothing may be written"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    return Fuzzed(tmp_path_factory.mktemp("fuzz"))


ids = st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9_\-]{0,110}", fullmatch=True))


@FUZZ
@given(project=ids, task=ids, action=st.sampled_from(["get", "stop", "resume", "delete"]))
def test_random_ids(fuzzed: Fuzzed, project: str, task: str, action: str) -> None:
    base = f"/v2/{quote(project, safe='')}/processor-tasks/{quote(task, safe='')}"
    r = {"get": lambda: fuzzed.client.get(base), "delete": lambda: fuzzed.client.delete(base),
         "stop": lambda: fuzzed.client.post(base + "/stop"),
         "resume": lambda: fuzzed.client.post(base + "/resume")}[action]()
    fuzzed.check(r)
    assert r.status_code in (400, 404), r.text


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(LIST_PARAMS), st.text(max_size=80)), max_size=8))
def test_random_query_strings(fuzzed: Fuzzed, pairs: list[tuple[str, str]]) -> None:
    r = fuzzed.client.get(f"/v2/p1/processor-tasks?{urlencode(pairs)}")
    fuzzed.check(r)
    assert r.status_code in (200, 400), r.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(body=json_values)
def test_random_json_bodies(fuzzed: Fuzzed, body) -> None:
    r = fuzzed.client.post("/v2/p1/processor-tasks", content=json.dumps(body),
                           headers={"content-type": "application/json"})
    fuzzed.check(r)
    assert r.status_code == 400, r.text


paths = st.one_of(
    st.text(max_size=200),
    st.builds(lambda s: "/" + s, st.text(max_size=100)),
    st.builds(lambda s: f"file://{s}", st.text(max_size=50)),
    st.sampled_from(["/", "/etc/passwd", "~", "..", "/proc/self/environ", "\\\\server\\share", "C:\\x"]),
)


@FUZZ
@given(source=paths, work=st.one_of(st.none(), paths), field=st.sampled_from(["source", "work"]),
       params=st.dictionaries(st.text(max_size=20), json_values, max_size=3))
def test_random_paths_and_params(fuzzed: Fuzzed, source: str, work: str | None, field: str, params: dict) -> None:
    body = {"name": "fuzz", "data_source": {"type": "OBS", "source": str(fuzzed.folder)},
            "template": {"id": "sys_data_analyse", "operator_params": [{"id": "image_features", "params": params}]}}
    if field == "source":
        body["data_source"]["source"] = source
    elif work is not None:
        body["work_path"] = {"type": "OBS", "path": work}
    r = fuzzed.client.post("/v2/p1/processor-tasks", json=body)
    fuzzed.check(r)
    assert r.status_code in (200, 400), r.text  # 200: a valid body, queued


@FUZZ
@given(value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120))
def test_random_authorization_headers(fuzzed: Fuzzed, value: str) -> None:
    client = TestClient(fuzzed.client.app, raise_server_exceptions=False)
    r = client.get("/v2/p1/processor-tasks", headers={"Authorization": value})
    fuzzed.check(r)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"]


def test_the_fuzzed_folder_was_really_there(fuzzed: Fuzzed) -> None:
    # A valid body is accepted and queued: the checks above are not all trivially 400s.
    r = fuzzed.client.post("/v2/p1/processor-tasks", json={
        "name": "ok", "data_source": {"source": str(fuzzed.folder)}, "template": {"id": "sys_data_analyse"}})
    fuzzed.check(r)
    assert r.status_code == 200
    assert fuzzed.service.dispatcher.dispatch() == 0  # Ray is unreachable: the run stays queued
    assert fuzzed.client.get(f"/v2/p1/processor-tasks/{r.json()['task_id']}").json()["queue_position"] is not None
    assert os.listdir(fuzzed.folder)
