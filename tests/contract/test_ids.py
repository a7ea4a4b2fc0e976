"""The id rule: synapse-sdk's checks, in its order, with its messages."""

from __future__ import annotations

import pytest

from rayproc_contract.errors import InvalidResourceId
from rayproc_contract.ids import MAX_ID_LENGTH, validate_resource_id


@pytest.mark.parametrize(("value", "message"), [
    (None, "task ID cannot be empty"),
    ("", "task ID cannot be empty"),
    ("a b", "Invalid task ID format: only letters, digits, '-' and '_' are allowed"),
    ("a/b", "Invalid task ID format: only letters, digits, '-' and '_' are allowed"),
    ("ü", "Invalid task ID format: only letters, digits, '-' and '_' are allowed"),
    (42, "Invalid task ID format: only letters, digits, '-' and '_' are allowed"),
    # Characters are checked before length: a long id with a bad character is a format error.
    ("x" * 150 + "!", "Invalid task ID format: only letters, digits, '-' and '_' are allowed"),
    ("x" * (MAX_ID_LENGTH + 1), f"task ID too long: 101 characters, at most {MAX_ID_LENGTH}"),
])
def test_a_broken_id_is_refused_with_its_rules_message(value: object, message: str) -> None:
    with pytest.raises(InvalidResourceId) as caught:
        validate_resource_id(value)
    assert caught.value.message == message
    assert (caught.value.status_code, caught.value.error_code) == (400, "invalid_resource_id")


@pytest.mark.parametrize("value", ["a", "A-b_9", "x" * MAX_ID_LENGTH])
def test_a_valid_id_is_returned(value: str) -> None:
    assert validate_resource_id(value) == value


def test_the_kind_is_named() -> None:
    with pytest.raises(InvalidResourceId) as caught:
        validate_resource_id("", "project")
    assert caught.value.message == "project ID cannot be empty"
