"""The service raises the wire contract's error classes themselves: there is no second tree to drift."""

from __future__ import annotations

import pytest

from rayproc_contract import errors as W
from rayproc_contract import ids
from serve_app import errors as E


@pytest.mark.parametrize("cls", list(W.ERROR_CLASSES.values()), ids=lambda c: c.__name__)
def test_the_service_errors_are_the_contracts_classes(cls: type[W.ServiceError]) -> None:
    assert getattr(E, cls.__name__) is cls


def test_the_id_rule_is_the_contracts() -> None:
    assert E.validate_resource_id is ids.validate_resource_id
