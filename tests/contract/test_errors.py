"""The one error tree: every class has a unique code that maps back to it, and the docstring draws the tree."""

from __future__ import annotations

import pytest

from rayproc_contract import errors as W


def _tree() -> list[type[W.ServiceError]]:
    todo, found = [W.ServiceError], []
    while todo:
        cls = todo.pop()
        if cls.__module__ == W.__name__:  # a test's own subclass is not part of the contract
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found


def test_every_class_has_a_unique_code_that_maps_back_to_it() -> None:
    tree = _tree()
    codes = [cls.error_code for cls in tree]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert {code: W.ERROR_CLASSES.get(code) for code in codes} == {cls.error_code: cls for cls in tree}
    assert set(W.ERROR_CLASSES.values()) == set(tree)


@pytest.mark.parametrize("cls", _tree(), ids=lambda c: c.__name__)
def test_the_module_docstring_draws_every_class_with_its_status_and_code(cls: type[W.ServiceError]) -> None:
    lines = [line.split() for line in (W.__doc__ or "").splitlines()]
    drawn = [words for words in lines if cls.__name__ in words]
    assert len(drawn) == 1, cls.__name__
    words = drawn[0]
    assert words[words.index(cls.__name__) + 1:][:2] == [str(cls.status_code), cls.error_code]


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("invalid_state", 400, W.InvalidState),
    ("invalid_state", 409, W.InvalidState),  # the code decides when it is known
    ("made_up", 400, W.BadRequest),
    ("made_up", 404, W.NotFound),
    ("made_up", 503, W.RayUnavailable),
    ("made_up", 500, W.InternalError),
    (None, 502, W.ServiceError),
    ("made_up", 418, W.ServiceError),
])
def test_error_class_falls_back_to_the_most_general_class_of_the_status(
        code: str | None, status: int, expected: type[W.ServiceError]) -> None:
    assert W.error_class(code, status) is expected


def test_an_instance_keeps_the_status_and_code_it_was_given() -> None:
    err = W.BadRequest("odd", status_code=422, error_code="made_up")
    assert (err.status_code, err.error_code, err.message) == (422, "made_up", "odd")
    assert (W.BadRequest.status_code, W.BadRequest.error_code) == (400, "bad_request")
    assert err.body() == {"error_code": "made_up", "error_msg": "odd"}
    assert str(err) == "422 made_up: odd"


def test_only_unauthorized_adds_headers() -> None:
    assert {cls for cls in _tree() if cls.headers} == {W.Unauthorized}
    assert W.Unauthorized.headers == {"WWW-Authenticate": 'Token realm="rayproc", Bearer realm="rayproc"'}
