"""The operator registry and its completeness rules."""

from __future__ import annotations

import pytest

from operators.base import Operator, TaskType
from operators.registry import (
    DEFAULT_OPERATORS,
    DuplicateOperatorError,
    OperatorRegistry,
    default_registry,
)


def test_every_registered_operator_is_documented_with_defaults() -> None:
    for cls in default_registry():
        assert (cls.__doc__ or "").strip(), cls
        cls.Params()  # every param has a default
        assert cls.Params.model_json_schema()["type"] == "object"
        assert isinstance(cls.task_type, TaskType)


def test_default_operators_exist() -> None:
    reg = default_registry()
    for task_type, names in DEFAULT_OPERATORS.items():
        for name in names:
            assert reg.get(name, task_type).name == name


def test_duplicates_and_undocumented_operators_are_refused() -> None:
    reg = OperatorRegistry()

    class Doc(Operator):
        """Documented."""

        name = "x"
        task_type = TaskType.ANALYSE

    class NoDoc(Operator):
        name = "y"
        task_type = TaskType.ANALYSE

    reg.register(Doc)
    with pytest.raises(DuplicateOperatorError):
        reg.register(Doc)
    with pytest.raises(ValueError, match="docstring"):
        reg.register(NoDoc)


def test_unknown_operator_lists_valid_names() -> None:
    with pytest.raises(KeyError) as info:
        default_registry().get("nope", TaskType.ANALYSE)
    assert "image_features" in str(info.value)
