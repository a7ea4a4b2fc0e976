"""schemathesis against the live service: every operation of the OpenAPI document, every check.

The cases are schemathesis' own (its examples and fuzzing phases, seeded); positive cases get real resources in
place of random ones, so that they reach the service's work and not only its 404s: the project ``openapi``, an
image folder under the allowed root, and for each task route a task in the status that route needs (a fresh
task to stop; a stopped one to resume or delete; a completed analysis to report on). Schema-invalid cases are
sent as generated. Bounded: ``MAX_EXAMPLES`` fuzzing examples per operation (the coverage phase, which sends
hundreds of requests per operation, is left out to keep the suite's time; the fuzzing phase generates both
valid and invalid data).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import schemathesis

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

PROJECT = "openapi"
#: Fuzzing examples per operation: the cap that keeps this test's time bounded (see the module docstring).
MAX_EXAMPLES = 6
SEED = 20261201

schema = schemathesis.pytest.from_fixture("api_schema")


class Resources:
    """Real ids for positive cases, made on demand (each stop or delete uses up a task)."""

    def __init__(self, service: Service, folder: Path) -> None:
        self.service, self.folder = service, folder
        self._completed: str | None = None

    def create(self) -> str:
        return self.service.create(self.folder, project=PROJECT, name="schemathesis")

    def stopped(self) -> str:
        """A task stopped before it finished (one that finished first is not stoppable: try another)."""
        for _ in range(3):
            task_id = self.create()
            r = self.service.client.post(f"{self.service.tasks(PROJECT)}/{task_id}/stop")
            if r.status_code == 200:
                task = self.service.wait(task_id, lambda t: t["status"] in (2, 4), allowed={0, 1, 2, 4},
                                         project=PROJECT)
                if task["status"] == 4:
                    return task_id
        raise AssertionError("three tasks in a row finished before their stop")

    def completed(self) -> str:
        if self._completed is None:
            task_id = self.create()
            self._completed = self.service.wait_status(task_id, 2, allowed={0, 1}, project=PROJECT)["task_id"]
        return self._completed


@pytest.fixture(scope="module")
def resources(service: Service) -> Resources:
    if PROJECT not in {p["project_id"] for p in service.accounts.projects(None)}:
        service.accounts.create_project(PROJECT)
    folder = service.root / "inputs" / "schemathesis"
    make_many(folder, 3)
    return Resources(service, folder)


@pytest.fixture(scope="module")
def api_schema(service: Service, resources: Resources):
    loaded = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    loaded.config.update(headers={"Authorization": service.client.headers["Authorization"]}, base_url=service.url)
    loaded.config.seed = SEED
    loaded.config.phases.update(phases=["examples", "fuzzing"])
    loaded.config.generation.update(max_examples=MAX_EXAMPLES)
    return loaded


def _make_real(case, resources: Resources) -> None:
    """Swap the random ids and paths of a positive case for real ones."""
    path, method = case.operation.path, case.operation.method.lower()
    params = case.path_parameters if case.path_parameters is not None else {}
    if "project_id" in params:
        params["project_id"] = PROJECT
    if "task_id" in params or "job_id" in params:
        key = "task_id" if "task_id" in params else "job_id"
        if path.endswith("/stop") or path.endswith("/stop/"):
            params[key] = resources.create()
        elif path.endswith("/resume") or path.endswith("/resume/") or method == "delete":
            params[key] = resources.stopped()
        else:
            params[key] = resources.completed()
    if path.endswith("/processor-tasks") and method == "post" and isinstance(case.body, dict):
        body = copy.deepcopy(case.body)
        body["data_source"] = {"type": "OBS", "source": str(resources.folder)}
        body.pop("inputs", None)
        body.pop("work_path", None)
        body.pop("version_id", None)
        body["template"] = {"id": body.get("template", {}).get("id", "sys_data_analyse")}
        case.body = body


@schema.parametrize()
def test_every_operation_answers_as_documented(case, resources: Resources) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _make_real(case, resources)
    case.call_and_validate()


def test_the_token_is_checked_on_every_operation_that_declares_it(api_schema, service: Service) -> None:
    """Without a token, each secured operation is a 401 (the ``ignored_auth`` check, on a plain GET of each)."""
    secured = [op for op in api_schema.get_all_operations() if op.ok().definition.raw.get("security")]
    assert len(secured) >= 30
    client = service.client_for(None)
    for result in secured:
        op = result.ok()
        path = op.path.replace("{project_id}", PROJECT)
        for name in ("task_id", "job_id", "dataset_id", "version_id", "import_id", "user_name", "token_id"):
            path = path.replace("{" + name + "}", "1")
        r = client.request(op.method.upper(), path)
        assert r.status_code == 401, (op.method, path, r.status_code, r.text)
        assert r.json()["error_code"] == "unauthorized"
