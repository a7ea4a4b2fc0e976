"""The shared sans-I/O core, and the two thin clients built on it staying in step."""

from __future__ import annotations

import inspect

import httpx
import pytest

from rayproc_client import AsyncClient, AsyncTask, Client, RayUnavailable, Task
from rayproc_client._core import Api, Pause, Request, RetryPolicy
from rayproc_client.models import TaskInfo
from tests.client.fakes import task_json


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def _params(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_an_operation_runs_with_no_io_at_all() -> None:
    op = Api("http://svc", "tok", RetryPolicy(retries=2, backoff=1.0)).get_task("p1", "t1")
    request = next(op)
    assert request == Request("GET", "/v2/p1/processor-tasks/t1", idempotent=True)
    assert op.send(httpx.Response(503, json={"error_code": "ray_unavailable", "error_msg": "down"})) == Pause(1.0)
    assert op.send(None) == request
    with pytest.raises(StopIteration) as finished:
        op.send(httpx.Response(200, json=task_json("t1", status=2)))
    assert isinstance(finished.value.value, TaskInfo) and finished.value.value.status == 2


def test_an_operation_translates_the_last_failure() -> None:
    op = Api("http://svc", None, RetryPolicy(retries=0)).whoami()
    next(op)
    with pytest.raises(RayUnavailable, match="down"):
        op.send(httpx.Response(503, json={"error_code": "ray_unavailable", "error_msg": "down"}))


def test_sync_and_async_clients_offer_the_same_methods_with_the_same_parameters() -> None:
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert set(sync) - {"close"} == set(asynchronous) - {"aclose"}
    for name in set(sync) - {"close"}:
        assert _params(sync[name]) == _params(asynchronous[name]), name
    # The constructors differ only in the default sleep (time.sleep / asyncio.sleep).
    inits = [[p for p in _params(inspect.signature(cls.__init__)) if p[0] != "sleep"] for cls in (Client, AsyncClient)]
    assert inits[0] == inits[1]


def test_sync_and_async_tasks_offer_the_same_methods() -> None:
    for name in ("refresh", "wait_till_done"):
        assert _params(inspect.signature(getattr(Task, name))) == _params(inspect.signature(getattr(AsyncTask, name)))


def test_every_public_method_is_documented() -> None:
    for cls in (Client, AsyncClient, Task, AsyncTask):
        for name, member in inspect.getmembers(cls):
            if not name.startswith("_") and callable(member):
                assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"
