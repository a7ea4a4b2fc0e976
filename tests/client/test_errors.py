"""The error hierarchy: every server error code maps to the client class of the same name, in one table."""

from __future__ import annotations

import httpx
import pytest

from rayproc_client import errors as C
from serve_app import errors as S

SERVER_CLASSES = S.all_error_classes()


def _answer(status: int, body: dict | str) -> httpx.Response:
    request = httpx.Request("GET", "http://rayproc.test/v2/p1/processor-tasks")
    if isinstance(body, dict):
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, text=body, request=request)


def test_every_server_error_code_is_mapped() -> None:
    unmapped = sorted(cls.code for cls in SERVER_CLASSES if cls.code not in C.ERROR_CLASSES)
    assert not unmapped, f"server error codes the client does not map: {unmapped}"


def test_the_table_has_no_code_the_server_does_not_answer() -> None:
    assert set(C.ERROR_CLASSES) == {cls.code for cls in SERVER_CLASSES}


@pytest.mark.parametrize("server_cls", [c for c in SERVER_CLASSES if c is not S.ServiceError], ids=lambda c: c.__name__)
def test_each_server_class_has_a_client_twin(server_cls: type[S.ServiceError]) -> None:
    client_cls = C.ERROR_CLASSES[server_cls.code]
    assert client_cls.__name__ == server_cls.__name__
    assert client_cls.status_code == server_cls.status_code
    assert client_cls.error_code == server_cls.code
    # The tree is mirrored too: InvalidState is a BadRequest on both sides.
    assert client_cls.__mro__[1].__name__ == server_cls.__mro__[1].__name__
    assert issubclass(client_cls, C.ServiceError)


def test_every_client_service_error_is_in_the_table() -> None:
    todo, found = [C.ServiceError], []
    while todo:
        cls = todo.pop()
        found.extend(cls.__subclasses__())
        todo.extend(cls.__subclasses__())
    assert set(found) == set(C.ERROR_CLASSES.values())


@pytest.mark.parametrize("server_cls", SERVER_CLASSES, ids=lambda c: c.__name__)
def test_a_real_server_error_body_round_trips(server_cls: type[S.ServiceError]) -> None:
    exc = server_cls("it went wrong")
    err = C.translate(_answer(exc.status_code, exc.body()))
    assert type(err) is C.ERROR_CLASSES[exc.code]
    assert (err.status_code, err.error_code, err.message) == (exc.status_code, exc.code, "it went wrong")
    assert str(err) == f"{exc.status_code} {exc.code}: it went wrong"


@pytest.mark.parametrize(("status", "expected"), [
    (400, C.BadRequest), (401, C.Unauthorized), (403, C.Forbidden), (404, C.NotFound), (405, C.MethodNotAllowed),
    (409, C.Conflict), (413, C.PayloadTooLarge), (415, C.UnsupportedMediaType), (500, C.InternalError),
    (503, C.RayUnavailable),
    (418, C.ServiceError), (502, C.ServiceError),
])
def test_an_unknown_code_falls_back_by_status(status: int, expected: type[C.ServiceError]) -> None:
    err = C.translate(_answer(status, {"error_code": "http_error", "error_msg": "odd"}))
    assert type(err) is expected
    assert (err.status_code, err.error_code, err.message) == (status, "http_error", "odd")


def test_a_body_that_is_not_the_error_shape_keeps_status_and_text() -> None:
    err = C.translate(_answer(502, "<html>Bad Gateway</html>"))
    assert type(err) is C.ServiceError
    assert (err.status_code, err.error_code, err.message) == (502, "http_502", "<html>Bad Gateway</html>")


def test_a_success_answer_of_the_wrong_shape_is_unexpected() -> None:
    err = C.translate(_answer(200, "not json"))
    assert isinstance(err, C.UnexpectedResponse) and err.status_code == 200


@pytest.mark.parametrize(("exc", "expected"), [
    (httpx.ConnectError("refused"), C.ConnectError),
    (httpx.ConnectTimeout("slow connect"), C.ConnectError),
    (httpx.ReadError("reset"), C.ConnectError),
    (httpx.RemoteProtocolError("dropped"), C.ConnectError),
    (httpx.ReadTimeout("slow answer"), C.RequestTimeout),
    (httpx.PoolTimeout("pool"), C.RequestTimeout),
    (httpx.UnsupportedProtocol("ftp"), C.TransportError),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.__name__)
def test_transport_errors(exc: httpx.TransportError, expected: type[C.TransportError]) -> None:
    err = C.translate(exc)
    assert type(err) is expected
    assert err.status_code is None and isinstance(err, C.ClientError)


def test_every_error_is_a_client_error_and_a_timeout_is_a_timeout() -> None:
    for cls in (C.ServiceError, C.TransportError, C.UnexpectedResponse, C.TaskError):
        assert issubclass(cls, C.ClientError)
    assert issubclass(C.TaskTimeoutError, TimeoutError) and issubclass(C.TaskFailedError, C.TaskError)
