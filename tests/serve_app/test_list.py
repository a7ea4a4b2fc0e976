"""Listing with ModelArts' query parameters: filters, sorting, pages, and every 4xx."""

from __future__ import annotations

import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

PROJECT = "listing"


@pytest.fixture(scope="module")
def listed(service: Service, tmp_path_factory) -> dict[str, str]:
    """Five finished tasks in their own project, created in a known order."""
    folder = service.root / "inputs" / "listing"
    folder.mkdir(parents=True)
    make_many(folder, 2)
    specs = [
        ("alpha-one", "V001"), ("beta", "V001"), ("alpha-two", "V002"), ("gamma_%", "V003"), ("ALPHA-three", "V002"),
    ]
    ids = {}
    for name, version in specs:
        r = service.client.post(service.tasks(PROJECT), json={
            "name": name, "version_id": version, "data_source": {"type": "OBS", "source": str(folder)},
            "template": {"id": "sys_data_analyse"}})
        assert r.status_code == 200, r.text
        ids[name] = r.json()["task_id"]
    for task_id in ids.values():
        service.wait_status(task_id, 2, allowed={0, 1}, project=PROJECT)
    return ids


def _list(service: Service, query: str = "", project: str = PROJECT):
    return service.client.get(f"{service.tasks(project)}?{query}")


def _names(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [t["name"] for t in r.json()["tasks"]]


def test_default_is_newest_first_page_of_ten(service: Service, listed: dict) -> None:
    r = _list(service)
    assert r.json()["count"] == 5
    assert _names(r) == ["ALPHA-three", "gamma_%", "alpha-two", "beta", "alpha-one"]


def test_pages_are_page_indexes(service: Service, listed: dict) -> None:
    assert _names(_list(service, "limit=2&offset=0&order=asc")) == ["alpha-one", "beta"]
    assert _names(_list(service, "limit=2&offset=1&order=asc")) == ["alpha-two", "gamma_%"]
    assert _names(_list(service, "limit=2&offset=2&order=asc")) == ["ALPHA-three"]
    r = _list(service, "limit=2&offset=3")
    assert r.json() == {"count": 5, "tasks": []}


def test_sort_by_name(service: Service, listed: dict) -> None:
    assert _names(_list(service, "sort_by=name&order=asc")) == sorted(listed)


def test_filters(service: Service, listed: dict) -> None:
    assert sorted(_names(_list(service, "task_name=alpha"))) == ["ALPHA-three", "alpha-one", "alpha-two"]
    assert _names(_list(service, "task_name=_%25")) == ["gamma_%"]  # LIKE wildcards are literal
    assert _names(_list(service, "status=2&task_type=sys_data_analyse&limit=1")) == ["ALPHA-three"]
    assert _list(service, "status=3").json()["count"] == 0
    assert _list(service, "task_type=sys_data_cleaning").json()["count"] == 0
    assert _list(service, "source_type=OBS").json()["count"] == 5
    assert _list(service, "source_type=DATASET").json()["count"] == 0
    assert _list(service, "workspace_id=other").json()["count"] == 0


def test_version_id_repeated_or_comma_separated(service: Service, listed: dict) -> None:
    expected = ["ALPHA-three", "gamma_%", "alpha-two"]
    assert _names(_list(service, "version_id=V002&version_id=V003")) == expected
    assert _names(_list(service, "version_id=V002%2CV003")) == expected


def test_query_current_and_version_count(service: Service, listed: dict) -> None:
    tasks = {t["name"]: t for t in _list(service, "limit=100").json()["tasks"]}
    assert tasks["alpha-one"]["version_count"] == 2 and tasks["alpha-one"]["is_current"] is False
    assert tasks["beta"]["is_current"] is True
    assert tasks["alpha-two"]["version_count"] == 2 and tasks["alpha-two"]["is_current"] is False
    assert sorted(_names(_list(service, "query_current=true"))) == ["ALPHA-three", "beta", "gamma_%"]


def test_return_result(service: Service, listed: dict) -> None:
    with_result = _list(service).json()["tasks"]
    assert all("result" in t and t["result"]["item_count"] == 2 for t in with_result)
    assert all("result" not in t for t in _list(service, "return_result=false").json()["tasks"])


def test_the_seed_example_urls_work_verbatim(service: Service, listed: dict) -> None:
    first = ("offset=0&limit=10&sort_by=create_time&order=desc&source_type=DATASET&source=X6c3N3eztX7cr3Arvqu"
             "&task_type=sys_data_analyse&return_result=false&query_current=false")
    second = ("offset=0&limit=100&source_type=DATASET&source=X6c3N3eztX7cr3Arvqu"
              "&version_id=XwTuRqI9En7xuZskW70%2CJ4Eh2FDEWH1qnDlD3hQ&task_type=sys_data_analyse"
              "&return_result=true&query_current=true")
    for query in (first, second):
        r = _list(service, query)
        assert r.status_code == 200, r.text
        assert r.json() == {"count": 0, "tasks": []}


@pytest.mark.parametrize(("query", "fragment"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"),
    ("order=up", "order"), ("sort_by=size", "sort_by"), ("status=5", "status"), ("status=-1", "status"),
    ("task_type=sys_data_magic", "task_type"), ("source_type=FTP", "source_type"),
    ("query_current=maybe", "query_current"), ("return_result=2x", "return_result"),
    ("task_name=" + "n" * 65, "task_name"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(service: Service, query: str, fragment: str) -> None:
    r = _list(service, query)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "invalid_request"
    assert fragment in r.json()["error_msg"]


def test_repeated_parameters(service: Service, listed: dict) -> None:
    assert _list(service, "limit=2&limit=2").status_code == 200
    r = _list(service, "limit=2&limit=3")
    assert r.status_code == 400
    assert "'limit'" in r.json()["error_msg"] and "different values" in r.json()["error_msg"]


def test_too_many_version_ids(service: Service) -> None:
    r = _list(service, "version_id=" + ",".join(f"v{i}" for i in range(101)))
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_parameter"
