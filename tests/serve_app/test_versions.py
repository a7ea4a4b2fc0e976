"""Version series through the API on the real cluster: is_current and version_count after creates,
resumes and deletes, in single-task reads and in the list."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

PROJECT = "versions"


@pytest.fixture(scope="module", autouse=True)
def project(service: Service) -> None:
    """A project of its own, so that no other test's tasks join these series or lists."""
    service.accounts.create_project(PROJECT)


def _numbers(service: Service, *task_ids: str) -> list[tuple[bool, int]]:
    return [(t["is_current"], t["version_count"]) for t in (service.get(i, PROJECT) for i in task_ids)]


def _current(service: Service, source: Path) -> list[str]:
    r = service.client.get(service.tasks(PROJECT), params={"source": str(source), "query_current": "true"})
    assert r.status_code == 200, r.text
    return [t["task_id"] for t in r.json()["tasks"]]


def test_numbers_follow_creates_resumes_and_deletes(service: Service, folder: Path) -> None:
    images, empty = folder / "images", folder / "empty"
    make_many(images, 2)
    empty.mkdir()

    def create(source: Path) -> str:
        return service.create(source, project=PROJECT, version_id="VSERIES")

    first = create(images)
    service.wait_status(first, 2, allowed={0, 1}, project=PROJECT)
    second = create(images)
    service.wait_status(second, 2, allowed={0, 1}, project=PROJECT)
    assert _numbers(service, first, second) == [(False, 2), (True, 2)]
    assert _current(service, images) == [second]

    # Tasks over an empty folder fail (no items), so they can be resumed.
    old, new = create(empty), None
    service.wait_status(old, 3, allowed={0, 1}, project=PROJECT)
    new = create(empty)
    service.wait_status(new, 3, allowed={0, 1}, project=PROJECT)
    r = service.client.post(f"{service.tasks(PROJECT)}/{old}/resume")
    assert r.status_code == 200, r.text
    assert (r.json()["is_current"], r.json()["version_count"]) == (False, 2)  # a resume is not a new version
    service.wait_status(old, 3, allowed={0, 1}, project=PROJECT)
    assert _numbers(service, old, new) == [(False, 2), (True, 2)]

    assert service.client.delete(f"{service.tasks(PROJECT)}/{new}").status_code in (200, 204)
    assert _numbers(service, old) == [(True, 1)]
    assert _current(service, empty) == [old]
    assert service.client.delete(f"{service.tasks(PROJECT)}/{first}").status_code in (200, 204)
    assert _numbers(service, second) == [(True, 1)]
