"""``list_tasks`` walks the pages for you: ``offset`` is a page index, ``limit`` the page size."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from rayproc_client import InvalidRequest, TaskStatus
from tests.client.fakes import (
    Recorder,
    async_client,
    error_json,
    sync_client,
    task_json,
)


def listing(n: int, *, inserted_after_first_page: int = 0):
    """A service holding ``n`` tasks, newest first, answering ModelArts' page-index listing. Optionally, tasks
    are created between the first and second request (they go to the front, shifting every page)."""
    tasks = [task_json(f"t{i:03d}", status=2) for i in reversed(range(n))]
    served = {"pages": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        limit, page = int(params["limit"]), int(params["offset"])
        if served["pages"] == 1:
            tasks[:0] = [task_json(f"new{i}", status=0) for i in range(inserted_after_first_page)]
        served["pages"] += 1
        return httpx.Response(200, json={"count": len(tasks), "tasks": tasks[page * limit:(page + 1) * limit]})

    return handle


def _pages(sent: Recorder) -> list[tuple[str, str]]:
    return [(r.url.params["offset"], r.url.params["limit"]) for r in sent.requests]


@pytest.mark.parametrize(("n", "page_size", "pages"), [
    (23, 10, 3), (20, 10, 2), (1, 100, 1), (0, 10, 1), (250, 100, 3), (7, 1, 7),
], ids=["23-by-10", "exact-multiple", "one", "empty", "250-by-100", "page-size-1"])
def test_walks_every_page_once(n: int, page_size: int, pages: int) -> None:
    client, sent = sync_client(listing(n))
    ids = [t.uid for t in client.list_tasks("p1", page_size=page_size)]
    assert ids == [f"t{i:03d}" for i in reversed(range(n))]
    assert _pages(sent) == [(str(p), str(page_size)) for p in range(pages)]


def test_nothing_is_fetched_until_iteration_and_iteration_is_lazy() -> None:
    client, sent = sync_client(listing(30))
    tasks = client.list_tasks("p1", page_size=10)
    assert sent.requests == []
    first = next(iter(tasks))
    assert first.uid == "t029" and len(sent.requests) == 1


def test_a_task_shifted_onto_the_next_page_is_not_yielded_twice() -> None:
    client, _ = sync_client(listing(6, inserted_after_first_page=2))
    ids = [t.uid for t in client.list_tasks("p1", page_size=3)]
    assert len(ids) == len(set(ids))
    assert ids[:3] == ["t005", "t004", "t003"]


def test_filters_become_the_apis_query() -> None:
    client, sent = sync_client(listing(0))
    list(client.list_tasks("p1", page_size=5, order="asc", sort_by="name", status=TaskStatus.FAILED,
                           task_type="sys_data_cleaning", task_name="alpha", source="/data", source_type="OBS",
                           version_id=["V1", "V2"], workspace_id="ws", query_current=True, return_result=False))
    assert sent.requests[0].url.params.multi_items() == [
        ("limit", "5"), ("offset", "0"), ("order", "asc"), ("sort_by", "name"), ("workspace_id", "ws"),
        ("query_current", "true"), ("return_result", "false"), ("status", "3"), ("task_type", "sys_data_cleaning"),
        ("task_name", "alpha"), ("source", "/data"), ("source_type", "OBS"), ("version_id", "V1"),
        ("version_id", "V2"),
    ]


@pytest.mark.parametrize("page_size", [0, 101, -1])
def test_a_page_size_outside_1_to_100_is_refused_at_once(page_size: int) -> None:
    client, sent = sync_client(listing(3))
    with pytest.raises(ValueError, match="page_size"):
        client.list_tasks("p1", page_size=page_size)
    assert sent.requests == []


def test_a_refused_query_raises_when_the_first_page_is_fetched() -> None:
    client, _ = sync_client(lambda r: error_json(400, "invalid_request", "status: bad"))
    tasks = client.list_tasks("p1")
    with pytest.raises(InvalidRequest, match="status"):
        next(iter(tasks))


def test_the_async_client_pages_the_same_way() -> None:
    client, sent = async_client(listing(23))

    async def walk() -> list[str]:
        return [t.uid async for t in client.list_tasks("p1", page_size=10)]

    assert asyncio.run(walk()) == [f"t{i:03d}" for i in reversed(range(23))]
    assert _pages(sent) == [("0", "10"), ("1", "10"), ("2", "10")]
