"""Test doubles for the client: a fake clock, and a scripted service behind ``httpx.MockTransport``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from rayproc_client import AsyncClient, Client

BASE = "http://rayproc.test"
TOKEN = "rpt_test.secret"


@dataclass
class FakeClock:
    """Time that passes only when someone sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            raise AssertionError(f"a sleep of {seconds} seconds would busy-loop")
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def task_json(task_id: str = "t1", status: int = 1, **fields: Any) -> dict[str, Any]:
    """A task as the service answers it (the fields a client reads; the rest have defaults)."""
    body = {"task_id": task_id, "name": f"name-{task_id}", "status": status, "completion_percentage": 50.0,
            "processed_count": 0, "failed_count": 0}
    body.update(fields)
    return body


def error_json(status: int, code: str, message: str = "nope") -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "error_msg": message})


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Wraps a handler and keeps every request it was sent."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def body(self, index: int) -> Any:
        return json.loads(self.requests[index].content)


def sequence(*outcomes: httpx.Response | Exception) -> Handler:
    """A handler answering the given responses (or raising the given errors) in order."""
    queue = list(outcomes)

    def handle(request: httpx.Request) -> httpx.Response:
        if not queue:
            raise AssertionError(f"unexpected extra request {request.method} {request.url}")
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return handle


def sync_client(handler: Handler, clock: FakeClock | None = None, **kwargs: Any) -> tuple[Client, Recorder]:
    recorder = Recorder(handler)
    clock = clock or FakeClock()
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return Client(BASE, TOKEN, http=http, sleep=clock.sleep, clock=clock, **kwargs), recorder


def async_client(handler: Handler, clock: FakeClock | None = None, **kwargs: Any) -> tuple[AsyncClient, Recorder]:
    recorder = Recorder(handler)
    clock = clock or FakeClock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return AsyncClient(BASE, TOKEN, http=http, sleep=clock.async_sleep, clock=clock, **kwargs), recorder
