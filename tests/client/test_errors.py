"""The client's errors: the service's classes themselves for its answers, mapped back through the contract's one
table; its own classes for no answer, a wrong answer and a task's outcome."""

from __future__ import annotations

import httpx
import pytest

import rayproc_client
from rayproc_client import errors as C
from rayproc_contract import errors as W

SERVICE_CLASSES = list(W.ERROR_CLASSES.values())


def _answer(status: int, body: dict | str) -> httpx.Response:
    request = httpx.Request("GET", "http://rayproc.test/v2/p1/processor-tasks")
    if isinstance(body, dict):
        return httpx.Response(status, json=body, request=request)
    return httpx.Response(status, text=body, request=request)


@pytest.mark.parametrize("cls", SERVICE_CLASSES, ids=lambda c: c.__name__)
def test_the_client_raises_the_contracts_classes_themselves(cls: type[W.ServiceError]) -> None:
    assert getattr(rayproc_client, cls.__name__) is cls
    assert getattr(C, cls.__name__) is cls
    assert issubclass(cls, rayproc_client.ClientError)


@pytest.mark.parametrize("cls", SERVICE_CLASSES, ids=lambda c: c.__name__)
def test_a_real_service_error_body_round_trips(cls: type[W.ServiceError]) -> None:
    exc = cls("it went wrong")
    err = C.translate(_answer(exc.status_code, exc.body()))
    assert type(err) is cls
    assert (err.status_code, err.error_code, err.message) == (exc.status_code, exc.error_code, "it went wrong")
    assert str(err) == f"{exc.status_code} {exc.error_code}: it went wrong"


def test_except_client_error_catches_every_service_error() -> None:
    # A real `except` clause: it matches by the class tree itself, where issubclass() could be fooled by hooks.
    caught = []
    for cls in SERVICE_CLASSES:
        try:
            raise C.translate(_answer(cls.status_code or 500, cls("x").body()))
        except C.ClientError as exc:
            caught.append(type(exc))
    assert caught == SERVICE_CLASSES


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
