"""schemathesis against the live service: every operation of the OpenAPI document, every check.

The cases are schemathesis' own, positive (schema-valid) and negative (schema-invalid), from a fixed seed, and
each answer goes through every check schemathesis has (``call_and_validate`` with its default: all of them).
Positive cases get real resources in place of random ones, so that they reach the service's work and not only
its 404s: the project ``openapi``, an image folder under the allowed root, and for each task route a task in the
status that route needs (a running one to stop; a stopped one to resume or delete; a completed analysis to
report on). Negative cases are sent as generated.

Bounded (the cap that keeps the suite's time): ``MAX_EXAMPLES`` cases per operation and mode, no shrinking, and
not schemathesis' coverage phase, which sends hundreds of requests per operation (its wrong-method probes, the
one place the ``unsupported_method`` check acts, are covered by ``test_openapi.py``'s 405 tests).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

PROJECT = "openapi"
#: Fuzzing examples per operation: the cap that keeps this test's time bounded (see the module docstring).
MAX_EXAMPLES = 2
SEED = 20261201


class Resources:
    """Real ids for positive cases. A task goes round: created (or resumed) -> stopped -> resumed ..., so that
    each stop and resume finds a task in the status it needs without a new task each time."""

    def __init__(self, service: Service, folder: Path) -> None:
        self.service, self.folder = service, folder
        self._completed: str | None = None
        self.active: list[str] = []  # created or resumed, not yet stopped
        self.stopped: list[str] = []
        self.created = 0
        self.stops = self.resumes = 0  # that answered 200

    def create(self, *, slow: bool = True) -> str:
        """A task; a slow one (a second an item, an item a chunk) is still running when a stop comes."""
        self.created += 1
        if not slow:
            return self.service.create(self.folder, project=PROJECT, name="schemathesis")
        return self.service.create(self.folder, project=PROJECT, name="schemathesis", execution={"chunk_size": 1},
                                   template={"id": "sys_data_analyse", "operator_params": [
                                       {"id": "work_probe", "params": {"delay_seconds": 1}}]})

    def to_stop(self) -> str:
        while self.active:
            task_id = self.active.pop()
            if self.service.get(task_id, PROJECT)["status"] in (0, 1):
                return task_id
        return self.create()

    def to_resume(self) -> str:
        """A task stopped before it finished (one that finished first cannot be resumed: try another)."""
        while self.stopped:
            task_id = self.stopped.pop()
            if self.settle(task_id) == 4:
                return task_id
        for _ in range(3):
            task_id = self.create()
            r = self.service.client.post(f"{self.service.tasks(PROJECT)}/{task_id}/stop")
            if r.status_code == 200 and self.settle(task_id) == 4:
                return task_id
        raise AssertionError("three tasks in a row finished before their stop")

    def settle(self, task_id: str) -> int:
        task = self.service.wait(task_id, lambda t: t["status"] in (2, 3, 4), allowed={0, 1, 2, 3, 4},
                                 project=PROJECT)
        return task["status"]

    def completed(self) -> str:
        if self._completed is None:
            task_id = self.create(slow=False)
            self._completed = self.service.wait_status(task_id, 2, allowed={0, 1}, project=PROJECT)["task_id"]
        return self._completed

    def after(self, case, response) -> None:
        """Put the task a stop or resume acted on where the next one will look for it."""
        task_id = (case.path_parameters or {}).get("task_id") or (case.path_parameters or {}).get("job_id")
        if task_id is None or response.status_code != 200 or case.operation.method.lower() != "post":
            return
        if "/stop" in case.operation.path:
            self.stops += 1
            self.stopped.append(task_id)
        elif "/resume" in case.operation.path:
            self.resumes += 1
            self.active.append(task_id)


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
    loaded.config.update(base_url=service.url)
    loaded.config.seed = SEED
    return loaded


def _make_real(case, resources: Resources) -> None:
    """Swap the random ids and paths of a positive case for real ones."""
    path, method = case.operation.path, case.operation.method.lower()
    params = case.path_parameters if case.path_parameters is not None else {}
    if "project_id" in params:
        params["project_id"] = PROJECT
    if path.startswith("/api/tasks/"):
        pass  # Label Studio's task ids are item numbers: the generated number stands (an unknown one is a 404)
    elif "task_id" in params or "job_id" in params:
        key = "task_id" if "task_id" in params else "job_id"
        if "/stop" in path:
            params[key] = resources.to_stop()
        elif "/resume" in path or method == "delete":
            params[key] = resources.to_resume()
        else:
            params[key] = resources.completed()
    if path == "/api/tasks/" and case.query is not None:
        case.query["project"] = PROJECT
    if path.endswith("/processor-tasks") and method == "post" and isinstance(case.body, dict):
        body = copy.deepcopy(case.body)
        body["data_source"] = {"type": "OBS", "source": str(resources.folder)}
        body.pop("inputs", None)
        body.pop("work_path", None)
        body.pop("version_id", None)
        body["template"] = {"id": body.get("template", {}).get("id", "sys_data_analyse")}
        case.body = body
    if path.endswith("/import") and method == "post":
        if isinstance(case.body, dict) and "folder" in case.body:
            case.body = {**case.body, "folder": str(resources.folder)}
            case.body.pop("metadata_sheet", None)
        elif not isinstance(case.body, list):  # an upload: its format is read from its name, which is random
            case.media_type = "application/json"
            case.body = [{"image": str(p)} for p in sorted(resources.folder.iterdir())]


def _run(operation, mode: GenerationMode, resources: Resources, auth: dict[str, str]) -> int:
    sent = 0

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(SEED)
    def run(case) -> None:
        nonlocal sent
        if mode.is_positive:
            _make_real(case, resources)
        response = case.call_and_validate(headers=auth)  # given explicitly: ignored_auth also probes without it
        if mode.is_positive:
            resources.after(case, response)
        sent += 1

    run()
    return sent


def test_every_operation_answers_as_documented(api_schema, service: Service, resources: Resources) -> None:
    failures, sent = [], 0
    auth = {"Authorization": service.client.headers["Authorization"]}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sent += _run(operation, mode, resources, auth)
            except Unsatisfiable:
                assert not mode.is_positive, operation.label  # nothing to make invalid: no parameters, no body
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' failure group names every failed check
                failures.append(f"{mode.value} {operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert sent >= len(operations)  # every operation was called
    assert resources.created > 0 and resources.stops > 0 and resources.resumes > 0  # real tasks, really driven
    print(f"{sent} requests over {len(operations)} operations; {resources.created} tasks created, "
          f"{resources.stops} stops and {resources.resumes} resumes answered 200")


def test_the_token_is_checked_on_every_operation_that_declares_it(api_schema, service: Service) -> None:
    """Without a token, every operation the document marks as secured answers 401, before anything else."""
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
