"""Idempotent creates through the real service: task creates and imports with an ``Idempotency-Key``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rayproc_client import Client
from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray
P, OTHER = "idem", "idem-other"


@pytest.fixture(scope="module")
def projects(service: Service) -> tuple[str, str]:
    for project in (P, OTHER):
        service.accounts.create_project(project)
    return P, OTHER


@pytest.fixture(scope="module")
def images(service: Service) -> Path:
    folder = service.root / "inputs" / "idempotency"
    folder.mkdir(parents=True)
    make_many(folder, 3)
    return folder


def _body(images: Path, name: str) -> dict:
    return {"name": name, "data_source": {"type": "OBS", "source": str(images)},
            "template": {"id": "sys_data_analyse"}}


def _post(service: Service, body: dict | str, key: str | None, project: str = P) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    if isinstance(body, str):
        headers["Content-Type"] = "application/json"
        return service.client.post(service.tasks(project), content=body, headers=headers)
    return service.client.post(service.tasks(project), json=body, headers=headers)


def _named(service: Service, name: str, project: str = P) -> list[str]:
    r = service.client.get(service.tasks(project), params={"task_name": name, "limit": 100})
    assert r.status_code == 200, r.text
    return [t["task_id"] for t in r.json()["tasks"] if t["name"] == name]


def test_a_repeat_with_the_same_key_and_body_answers_the_first_answer(service: Service, projects, images) -> None:
    body = _body(images, "idem-same")
    first = _post(service, body, "same-1")
    # The same body written otherwise: other key order, other whitespace.
    again = _post(service, json.dumps(dict(reversed(list(body.items()))), indent=3), "same-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and set(first.json()) == {"task_id"}
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert _named(service, "idem-same") == [first.json()["task_id"]]


def test_the_same_key_with_another_body_is_a_conflict_naming_the_key(service: Service, projects, images) -> None:
    first = _post(service, _body(images, "idem-conflict"), "conflict-1")
    assert first.status_code == 200, first.text
    other = _post(service, _body(images, "idem-conflict-2"), "conflict-1")
    assert other.status_code == 409
    assert other.json()["error_code"] == "conflict" and "'conflict-1'" in other.json()["error_msg"]
    assert _named(service, "idem-conflict-2") == []


def test_projects_keep_the_same_key_apart(service: Service, projects, images) -> None:
    here = _post(service, _body(images, "idem-projects"), "shared-key")
    there = _post(service, _body(images, "idem-projects"), "shared-key", project=OTHER)
    assert here.status_code == there.status_code == 200
    assert here.json()["task_id"] != there.json()["task_id"]
    assert _named(service, "idem-projects") == [here.json()["task_id"]]
    assert _named(service, "idem-projects", OTHER) == [there.json()["task_id"]]


def test_concurrent_requests_with_one_key_create_one_task(service: Service, projects, images) -> None:
    body = _body(images, "idem-concurrent")
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(_post(service, body, "concurrent-1")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    ids = {a.json()["task_id"] for a in answers}
    assert len(ids) == 1 and _named(service, "idem-concurrent") == list(ids)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "a/b"], ids=["empty", "too-long", "space", "slash"])
def test_a_malformed_key_is_a_400_and_creates_nothing(service: Service, projects, images, key: str) -> None:
    r = _post(service, _body(images, "idem-bad-key"), key)
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_request"
    assert "Idempotency-Key header" in r.json()["error_msg"] and "Traceback" not in r.text
    assert _named(service, "idem-bad-key") == []


def test_a_failed_create_leaves_the_key_free(service: Service, projects, images) -> None:
    missing = service.root / "inputs" / "idempotency-later"
    body = {**_body(images, "idem-retry-later"), "data_source": {"type": "OBS", "source": str(missing)}}
    refused = _post(service, body, "later-1")
    assert refused.status_code == 400, refused.text
    missing.mkdir()
    make_many(missing, 3)
    created = _post(service, body, "later-1")
    assert created.status_code == 200 and "Idempotent-Replayed" not in created.headers
    assert _named(service, "idem-retry-later") == [created.json()["task_id"]]


def test_the_header_is_in_the_api_reference(service: Service) -> None:
    spec = service.client.get("/openapi.json").json()
    for path in ("/v2/{project_id}/processor-tasks", "/api/projects/{project_id}/import"):
        header = [p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
        assert header and header[0]["in"] == "header" and "repeat" in header[0]["description"]


# ----- imports -------------------------------------------------------------------------------------


def _import(service: Service, key: str, **kw) -> httpx.Response:
    return service.client.post(f"/api/projects/{P}/import", headers={"Idempotency-Key": key}, **kw)


def test_an_import_repeated_with_its_key_imports_once(service: Service, projects) -> None:
    items = [{"text": "one"}, {"text": "two"}]
    first = _import(service, "import-1", json=items)
    again = _import(service, "import-1", json=items)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    other = _import(service, "import-1", json=[{"text": "three"}])
    assert other.status_code == 409 and "'import-1'" in other.json()["error_msg"]
    elsewhere = _import(service, "import-1", json=items, params={"dataset": "another"})
    assert elsewhere.status_code == 409  # the query is part of the request


def test_an_upload_repeated_with_its_key_imports_once(service: Service, projects) -> None:
    content = b'{"text": "a"}\n{"text": "b"}\n'
    first = _import(service, "upload-1", files={"file": ("items.jsonl", content)})
    # httpx draws a new multipart boundary each time: the file's bytes are what count.
    again = _import(service, "upload-1", files={"file": ("items.jsonl", content)})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    changed = _import(service, "upload-1", files={"file": ("items.jsonl", content + b'{"text": "c"}\n')})
    assert changed.status_code == 409


# ----- the client's retries ------------------------------------------------------------------------


class DropFirstCreateAnswer(httpx.BaseTransport):
    """Sends every request to the service, but loses the answer to the first create: the service has created
    the task, the caller sees a dropped connection."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/processor-tasks") and not self.dropped:
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def dropping_client(service: Service) -> Iterator[tuple[Client, DropFirstCreateAnswer]]:
    transport = DropFirstCreateAnswer()
    token = service.client.headers["Authorization"].removeprefix("Token ")
    with httpx.Client(transport=transport, timeout=60) as http:
        yield Client(service.url, token, http=http, backoff=0), transport


def test_the_clients_retry_after_a_dropped_answer_creates_one_task(service: Service, projects, images,
                                                                    dropping_client) -> None:
    client, transport = dropping_client
    task = client.create_task(P, name="idem-client-retry", source=images)
    assert transport.dropped == 1
    assert _named(service, "idem-client-retry") == [task.task_id]
