"""Every 4xx the processor-task API promises, against the real served app."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray


def _body(source: str, **kw) -> dict:
    return {"name": "t", "data_source": {"type": "OBS", "source": source}, "template": {"id": "sys_data_analyse"}, **kw}


def _count(service: Service, project: str = "p1") -> int:
    return service.client.get(service.tasks(project), params={"limit": 100}).json()["count"]


def _assert_error(r, status: int, code: str, *fragments: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "error_msg"}, body
    assert body["error_code"] == code, body
    for f in fragments:
        assert f in body["error_msg"], body
    assert "Traceback" not in r.text


# ----- ids: the synapse-sdk rules, in order -------------------------------------------------

ID_TABLE = [
    pytest.param("", "cannot be empty", id="empty"),
    pytest.param("job%201", "Invalid task ID format", id="space"),
    pytest.param("a/b", "Invalid task ID format", id="slash"),
    pytest.param("x" * 101, "too long", id="101-chars"),
    pytest.param("%C3%A9t%C3%A9", "Invalid task ID format", id="non-ascii"),
]


@pytest.mark.parametrize("action", ["stop", "resume"])
@pytest.mark.parametrize(("raw_id", "fragment"), ID_TABLE)
def test_stop_and_resume_validate_the_id_first(service: Service, action: str, raw_id: str, fragment: str) -> None:
    r = service.client.post(f"{service.tasks()}/{raw_id}/{action}")
    _assert_error(r, 400, "invalid_resource_id", fragment)


@pytest.mark.parametrize(("raw_id", "fragment"), [p for p in ID_TABLE if p.id != "empty"])
def test_get_and_delete_validate_the_id(service: Service, raw_id: str, fragment: str) -> None:
    _assert_error(service.client.get(f"{service.tasks()}/{raw_id}"), 400, "invalid_resource_id", fragment)
    _assert_error(service.client.delete(f"{service.tasks()}/{raw_id}"), 400, "invalid_resource_id", fragment)


def test_100_characters_is_a_valid_id_that_does_not_exist(service: Service) -> None:
    task_id = "a-" + "x" * 98
    for r in (service.client.post(f"{service.tasks()}/{task_id}/stop"),
              service.client.post(f"{service.tasks()}/{task_id}/resume"),
              service.client.get(f"{service.tasks()}/{task_id}"),
              service.client.delete(f"{service.tasks()}/{task_id}")):
        _assert_error(r, 404, "not_found", task_id)


def test_project_id_is_validated(service: Service) -> None:
    _assert_error(service.client.get("/v2/bad%20project/processor-tasks"), 400, "invalid_resource_id", "project")


def test_another_projects_task_is_not_found(service: Service, folder: Path) -> None:
    make_many(folder, 1)
    task_id = service.create(folder, project="owner")
    _assert_error(service.client.get(f"{service.tasks('intruder')}/{task_id}"), 404, "not_found")
    _assert_error(service.client.post(f"{service.tasks('intruder')}/{task_id}/stop"), 404, "not_found")
    assert task_id not in service.client.get(service.tasks("intruder")).text


# ----- create: bad bodies change nothing -----------------------------------------------------


def test_bad_operator_param_is_a_400_naming_the_field(service: Service, folder: Path) -> None:
    make_many(folder, 1)
    before = _count(service)
    body = _body(str(folder), template={"id": "sys_data_analyse",
                                        "operator_params": [{"id": "image_features", "params": {"histogram_bins": 1}}]})
    r = service.client.post(service.tasks(), json=body)
    _assert_error(r, 400, "invalid_parameter", "template.operator_params[0].params.histogram_bins")
    body["template"]["operator_params"][0]["params"] = {"histogram_binz": 5}
    r = service.client.post(service.tasks(), json=body)
    _assert_error(r, 400, "invalid_parameter", "histogram_binz")
    assert _count(service) == before


def test_unknown_template_and_operator_list_the_valid_names(service: Service, folder: Path) -> None:
    r = service.client.post(service.tasks(), json=_body(str(folder), template={"id": "sys_data_magic"}))
    _assert_error(r, 400, "invalid_parameter", "template.id", "sys_data_analyse", "sys_data_selection")
    r = service.client.post(service.tasks(), json=_body(
        str(folder), template={"id": "sys_data_analyse", "operator_params": [{"id": "nope"}]}))
    _assert_error(r, 400, "invalid_parameter", "template.operator_params[0].id", "image_features")


@pytest.mark.parametrize("source", [
    "/etc", "relative/path", "file:///etc/passwd", "s3://bucket/key", "http://127.0.0.1/x",
])
def test_sources_outside_the_allowed_roots_are_refused(service: Service, source: str) -> None:
    before = _count(service)
    _assert_error(service.client.post(service.tasks(), json=_body(source)), 400, "path_not_allowed")
    assert _count(service) == before


def test_dotdot_and_escaping_symlinks_are_refused(service: Service, folder: Path) -> None:
    _assert_error(service.client.post(service.tasks(), json=_body(f"{folder}/../..")), 400, "path_not_allowed", "..")
    (folder / "escape").symlink_to("/etc")
    _assert_error(service.client.post(service.tasks(), json=_body(str(folder / "escape"))), 400, "path_not_allowed")
    _assert_error(service.client.post(service.tasks(), json=_body(str(folder), work_path={"path": "/tmp"})),
                  400, "path_not_allowed", "work_path")


def test_missing_source_and_unsupported_types(service: Service, folder: Path) -> None:
    _assert_error(service.client.post(service.tasks(), json=_body(str(folder / "missing"))),
                  400, "invalid_parameter", "does not exist")
    body = _body("X6c3N3eztX7cr3Arvqu")
    body["data_source"]["type"] = "DATASET"
    _assert_error(service.client.post(service.tasks(), json=body), 404, "not_found", "X6c3N3eztX7cr3Arvqu")
    body["data_source"]["type"] = "CUSTOM"
    _assert_error(service.client.post(service.tasks(), json=body), 400, "invalid_parameter", "CUSTOM")


@pytest.mark.parametrize(("content", "fragment"), [
    (b'{"name": "t", ', "JSON"),
    (b"[1, 2]", "body"),
    (b'"just a string"', "body"),
    (b"{}", "name"),
])
def test_malformed_bodies(service: Service, content: bytes, fragment: str) -> None:
    r = service.client.post(service.tasks(), content=content, headers={"content-type": "application/json"})
    _assert_error(r, 400, "invalid_request", fragment)


def test_unknown_body_fields_and_overlong_strings(service: Service, folder: Path) -> None:
    _assert_error(service.client.post(service.tasks(), json=_body(str(folder), surprise=1)),
                  400, "invalid_request", "surprise")
    _assert_error(service.client.post(service.tasks(), json={**_body(str(folder)), "name": "n" * 65}),
                  400, "invalid_request", "name")


def test_oversize_body_is_413(service: Service, folder: Path) -> None:
    body = _body(str(folder), description="d" * 10)
    big = b'{"name": "t", "description": "' + b"x" * 2_000_000 + b'"}'
    r = service.client.post(service.tasks(), content=big, headers={"content-type": "application/json"})
    _assert_error(r, 413, "payload_too_large")

    def chunks():
        yield b'{"name": "t", "description": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}'

    r = service.client.post(service.tasks(), content=chunks(), headers={"content-type": "application/json"})
    _assert_error(r, 413, "payload_too_large")
    assert service.client.post(service.tasks(), json=body).status_code in (200, 400)


def test_unknown_route_and_method_use_the_error_shape(service: Service) -> None:
    _assert_error(service.client.get("/v2/p1/nothing-here"), 404, "not_found")
    _assert_error(service.client.put(service.tasks()), 405, "method_not_allowed")
