"""What the client sends and how it reads answers, against ``httpx.MockTransport`` (no service, no sleeps)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from rayproc_client import (
    Client,
    ConnectError,
    Forbidden,
    InvalidParameter,
    InvalidRequest,
    InvalidResourceId,
    RayUnavailable,
    RequestTimeout,
    Task,
    TaskStatus,
    UnexpectedResponse,
)
from tests.client.fakes import (
    BASE,
    TOKEN,
    FakeClock,
    async_client,
    error_json,
    sequence,
    sync_client,
    task_json,
)

# ----- ids are checked before anything is sent --------------------------------------------------

BAD_IDS = [
    pytest.param("", "task ID cannot be empty", id="empty"),
    pytest.param("job 1", "Invalid task ID format", id="space"),
    pytest.param("a/b", "Invalid task ID format", id="slash"),
    pytest.param("../../v1/users", "Invalid task ID format", id="traversal"),
    pytest.param("été", "Invalid task ID format", id="non-ascii"),
    pytest.param("x" * 101, "task ID too long", id="101-chars"),
    pytest.param("x x" * 50, "Invalid task ID format", id="format-before-length"),
]


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should be sent, got {request.method} {request.url}")


@pytest.mark.parametrize("method", ["stop_job", "resume_job", "get_task", "delete_task", "task_logs"])
@pytest.mark.parametrize(("task_id", "message"), BAD_IDS)
def test_a_bad_task_id_is_refused_before_any_request(method: str, task_id: str, message: str) -> None:
    client, sent = sync_client(_never)
    with pytest.raises(InvalidResourceId) as caught:
        getattr(client, method)("p1", task_id)
    assert caught.value.message.startswith(message)
    assert (caught.value.status_code, caught.value.error_code) == (400, "invalid_resource_id")
    assert sent.requests == []


@pytest.mark.parametrize(("task_id", "message"), BAD_IDS)
def test_the_async_client_refuses_bad_ids_too(task_id: str, message: str) -> None:
    client, sent = async_client(_never)

    async def both() -> None:
        for call in (client.stop_job, client.resume_job):
            with pytest.raises(InvalidResourceId, match=message):
                await call("p1", task_id)

    asyncio.run(both())
    assert sent.requests == []


def test_a_100_character_id_is_sent() -> None:
    task_id = "a" * 100
    client, sent = sync_client(sequence(httpx.Response(200, json=task_json(task_id, status=4))))
    assert client.stop_job("p1", task_id).status == TaskStatus.STOPPED
    assert sent.calls == [f"POST /v2/p1/processor-tasks/{task_id}/stop"]


# ----- headers, URLs, configuration ----------------------------------------------------------------


def test_the_token_is_sent_in_label_studio_form() -> None:
    client, sent = sync_client(sequence(httpx.Response(200, json={"name": "admin", "is_admin": True})))
    me = client.whoami()
    assert (me.name, me.is_admin, me.projects) == ("admin", True, [])
    assert sent.requests[0].headers["Authorization"] == f"Token {TOKEN}"
    assert str(sent.requests[0].url) == f"{BASE}/v1/whoami"


def test_url_and_token_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYPROC_URL", "http://elsewhere:9000/")
    monkeypatch.setenv("RAYPROC_TOKEN", "from-env")
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok", "ray": "reachable"})

    client = Client(http=httpx.Client(transport=httpx.MockTransport(handle)))
    assert client.health().ray == "reachable"
    assert str(seen[0].url) == "http://elsewhere:9000/healthz"
    assert seen[0].headers["Authorization"] == "Token from-env"


def test_without_any_configuration_the_default_url_and_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYPROC_URL", raising=False)
    monkeypatch.delenv("RAYPROC_TOKEN", raising=False)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"projects": []})

    assert Client(http=httpx.Client(transport=httpx.MockTransport(handle))).projects() == []
    assert str(seen[0].url) == "http://127.0.0.1:8000/v1/projects"
    assert "Authorization" not in seen[0].headers


def test_an_injected_clients_base_url_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYPROC_URL", "http://not-this")
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"projects": []})

    http = httpx.Client(base_url="http://in-process/prefix", transport=httpx.MockTransport(handle))
    Client(token="t", http=http).projects()
    assert seen == ["http://in-process/prefix/v1/projects"]


def test_path_segments_are_encoded() -> None:
    client, sent = sync_client(sequence(httpx.Response(200, json={"project_id": "p", "user": "a/b", "role": "viewer"})))
    client.set_member("p?x", "a/b", "viewer")
    assert sent.requests[0].url.raw_path == b"/v1/projects/p%3Fx/members/a%2Fb"
    assert json.loads(sent.requests[0].content) == {"role": "viewer"}


def test_an_injected_http_client_is_not_closed() -> None:
    http = httpx.Client(transport=httpx.MockTransport(_never))
    with Client(BASE, "t", http=http):
        pass
    assert not http.is_closed


@pytest.mark.parametrize(("kwargs", "message"), [({"retries": -1}, "retries"), ({"backoff": -0.1}, "backoff")])
def test_bad_retry_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Client(BASE, "t", http=httpx.Client(transport=httpx.MockTransport(_never)), **kwargs)


# ----- create -----------------------------------------------------------------------------------


def test_create_sends_modelarts_body_and_reads_the_task_back() -> None:
    client, sent = sync_client(sequence(
        httpx.Response(200, json={"task_id": "new1"}),
        httpx.Response(200, json=task_json("new1", status=0, name="look")),
    ))
    task = client.create_task("p1", name="look", source="/data/in", operator_params={"image_features": {"bins": 4}},
                              description="d", work_path="/data/out", version_id="V1", chunk_size=8)
    assert isinstance(task, Task) and (task.uid, task.task_id, task.status_name) == ("new1", "new1", "initialized")
    assert sent.calls == ["POST /v2/p1/processor-tasks", "GET /v2/p1/processor-tasks/new1"]
    assert sent.body(0) == {
        "name": "look", "description": "d", "data_source": {"type": "OBS", "source": "/data/in"},
        "template": {"id": "sys_data_analyse", "operator_params": [{"id": "image_features", "params": {"bins": 4}}]},
        "workspace_id": "0", "work_path": {"type": "OBS", "path": "/data/out"}, "version_id": "V1",
        "execution": {"chunk_size": 8},
    }


def test_create_takes_operator_params_in_the_apis_list_form_too() -> None:
    client, sent = sync_client(sequence(httpx.Response(200, json={"task_id": "n"}),
                                        httpx.Response(200, json=task_json("n"))))
    params = [{"id": "data_selection", "params": {"method": "random", "count": 3}}]
    client.create_task("p1", name="pick", source="/d", template="sys_data_selection", operator_params=params)
    assert sent.body(0)["template"] == {"id": "sys_data_selection", "operator_params": params}
    assert "execution" not in sent.body(0) and "work_path" not in sent.body(0)


def test_a_refused_create_raises_the_mapped_error() -> None:
    client, _ = sync_client(sequence(error_json(400, "invalid_parameter", "template.id: unknown template 'x'")))
    with pytest.raises(InvalidParameter, match="unknown template"):
        client.create_task("p1", name="t", source="/d", template="x")


# ----- retries --------------------------------------------------------------------------------------


def test_a_read_is_retried_on_503_with_exponential_backoff() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(
        error_json(503, "ray_unavailable"), error_json(503, "ray_unavailable"),
        httpx.Response(200, json=task_json("t1", status=2))), clock)
    assert client.get_task("p1", "t1").status == 2
    assert len(sent.requests) == 3 and clock.sleeps == [0.5, 1.0]


def test_retries_give_up_after_the_limit() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(*[error_json(503, "ray_unavailable", "down")] * 4), clock)
    with pytest.raises(RayUnavailable, match="down") as caught:
        client.get_task("p1", "t1")
    assert caught.value.status_code == 503
    assert len(sent.requests) == 4 and clock.sleeps == [0.5, 1.0, 2.0]


def test_retries_and_backoff_are_configurable() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(*[error_json(503, "ray_unavailable")] * 2), clock, retries=1, backoff=2.0)
    with pytest.raises(RayUnavailable):
        client.projects()
    assert len(sent.requests) == 2 and clock.sleeps == [2.0]


def test_a_read_is_retried_on_a_connection_error() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(httpx.ConnectError("refused"), httpx.Response(200, json={"projects": []})),
                               clock)
    assert client.projects() == []
    assert len(sent.requests) == 2 and clock.sleeps == [0.5]


def test_an_unreachable_service_is_a_connect_error_from_httpx() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(*[httpx.ConnectError("refused")] * 4), clock)
    with pytest.raises(ConnectError) as caught:
        client.whoami()
    assert isinstance(caught.value.__cause__, httpx.ConnectError) and len(sent.requests) == 4


def test_a_read_timeout_is_not_retried() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(httpx.ReadTimeout("slow")), clock)
    with pytest.raises(RequestTimeout):
        client.get_task("p1", "t1")
    assert len(sent.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("failure", [error_json(503, "ray_unavailable"), httpx.ConnectError("refused")],
                         ids=["503", "connect-error"])
def test_a_create_is_retried_with_one_idempotency_key(failure: httpx.Response | Exception) -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(failure, httpx.Response(200, json={"task_id": "t1"}),
                                        httpx.Response(200, json=task_json("t1"))), clock)
    assert client.create_task("p1", name="t", source="/d").task_id == "t1"
    assert sent.calls == ["POST /v2/p1/processor-tasks"] * 2 + ["GET /v2/p1/processor-tasks/t1"]
    keys = [r.headers.get("Idempotency-Key") for r in sent.requests[:2]]
    assert keys[0] and keys[0] == keys[1] and clock.sleeps == [0.5]


def test_each_create_gets_a_fresh_key_unless_the_caller_gives_one() -> None:
    answers = [httpx.Response(200, json={"task_id": "t1"}), httpx.Response(200, json=task_json("t1"))] * 3
    client, sent = sync_client(sequence(*answers))
    for key in (None, None, "job-42:create"):
        client.create_task("p1", name="t", source="/d", idempotency_key=key)
    keys = [r.headers["Idempotency-Key"] for r in sent.requests if r.method == "POST"]
    assert keys[0] != keys[1] and len(keys[0]) == 32 and keys[2] == "job-42:create"


def test_a_malformed_idempotency_key_is_refused_before_any_request() -> None:
    client, sent = sync_client(_never)
    with pytest.raises(InvalidRequest, match="Idempotency-Key header"):
        client.create_task("p1", name="t", source="/d", idempotency_key="has space")
    with pytest.raises(InvalidRequest, match="Idempotency-Key header"):
        client.import_items("p1", [{"text": "a"}], idempotency_key="x" * 256)
    assert sent.requests == []


@pytest.mark.parametrize("call", [
    lambda c: c.import_items("p1", [{"text": "a"}]),
    lambda c: c.import_folder("p1", "/data/in"),
], ids=["import_items", "import_folder"])
def test_an_import_is_retried_with_one_idempotency_key(call) -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(httpx.ConnectError("refused"), httpx.Response(201, json={"import": 7})),
                               clock)
    assert call(client) == 7
    keys = [r.headers.get("Idempotency-Key") for r in sent.requests]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


@pytest.mark.parametrize(("call", "expected"), [
    (lambda c: c.create_user("ana"), "POST /v1/users"),
    (lambda c: c.create_token("ana"), "POST /v1/users/ana/tokens"),
    (lambda c: c.create_project("new"), "POST /v1/projects"),
    (lambda c: c.resume_job("p1", "t1"), "POST /v2/p1/processor-tasks/t1/resume"),
], ids=["create_user", "create_token", "create_project", "resume_job"])
def test_calls_that_create_something_are_never_retried(call, expected: str) -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(error_json(503, "ray_unavailable")), clock)
    with pytest.raises(RayUnavailable):
        call(client)
    assert sent.calls == [expected] and clock.sleeps == []


@pytest.mark.parametrize(("call", "answer"), [
    (lambda c: c.stop_job("p1", "t1"), httpx.Response(200, json=task_json("t1", status=4))),
    (lambda c: c.delete_task("p1", "t1"), httpx.Response(204)),
    (lambda c: c.revoke_token("abc"), httpx.Response(204)),
    (lambda c: c.set_member("p1", "ana", "member"),
     httpx.Response(200, json={"project_id": "p1", "user": "ana", "role": "member"})),
], ids=["stop_job", "delete_task", "revoke_token", "set_member"])
def test_idempotent_calls_are_retried(call, answer: httpx.Response) -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(error_json(503, "ray_unavailable"), answer), clock)
    call(client)
    assert len(sent.requests) == 2 and clock.sleeps == [0.5]


def test_a_4xx_is_never_retried() -> None:
    clock = FakeClock()
    client, sent = sync_client(sequence(error_json(403, "forbidden", "viewers read only")), clock)
    with pytest.raises(Forbidden):
        client.users()
    assert len(sent.requests) == 1 and clock.sleeps == []


def test_a_success_answer_of_the_wrong_shape_is_not_retried() -> None:
    client, sent = sync_client(sequence(httpx.Response(200, json={"unexpected": True})))
    with pytest.raises(UnexpectedResponse):
        client.get_task("p1", "t1")
    assert len(sent.requests) == 1


def test_the_async_client_retries_the_same_way() -> None:
    clock = FakeClock()
    client, sent = async_client(sequence(
        error_json(503, "ray_unavailable"), httpx.ConnectError("refused"),
        httpx.Response(200, json=task_json("t1", status=2))), clock)
    assert asyncio.run(client.get_task("p1", "t1")).status == 2
    assert len(sent.requests) == 3 and clock.sleeps == [0.5, 1.0]

    clock2 = FakeClock()
    client2, sent2 = async_client(sequence(error_json(503, "ray_unavailable"),
                                           httpx.Response(200, json={"task_id": "t2"}),
                                           httpx.Response(200, json=task_json("t2"))), clock2)
    assert asyncio.run(client2.create_task("p1", name="t", source="/d")).task_id == "t2"
    keys = [r.headers.get("Idempotency-Key") for r in sent2.requests if r.method == "POST"]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1] and clock2.sleeps == [0.5]


# ----- other endpoints ------------------------------------------------------------------------------


def test_text_endpoints_and_their_query() -> None:
    client, sent = sync_client(sequence(httpx.Response(200, text="line 1\n"),
                                        httpx.Response(200, html="<html>report</html>")))
    assert client.task_logs("p1", "t1", run=2) == "line 1\n"
    assert client.task_report("p1", "t1") == "<html>report</html>"
    assert [str(r.url) for r in sent.requests] == [f"{BASE}/v2/p1/processor-tasks/t1/logs?run=2",
                                                   f"{BASE}/v2/p1/processor-tasks/t1/report"]


def test_an_issued_token_is_kept_out_of_repr() -> None:
    client, _ = sync_client(sequence(httpx.Response(201, json={"token_id": "i", "token": "rpt_i.s3cret",
                                                               "user": "ana"})))
    issued = client.create_token("ana", name="laptop")
    assert issued.token == "rpt_i.s3cret" and "s3cret" not in repr(issued)
