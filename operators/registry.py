"""Name -> operator class. Registration is explicit and duplicate names are an error."""

from __future__ import annotations

from collections.abc import Iterator

from operators.base import Operator, TaskType


class DuplicateOperatorError(ValueError):
    pass


class UnknownOperatorError(KeyError):
    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.valid = valid

    def __str__(self) -> str:
        return f"unknown operator {self.name!r}; valid operators: {', '.join(self.valid) or '(none)'}"


class OperatorRegistry:
    def __init__(self) -> None:
        self._ops: dict[str, type[Operator]] = {}

    def register(self, cls: type[Operator]) -> type[Operator]:
        if not (cls.__doc__ or "").strip():
            raise ValueError(f"operator {cls.__name__} needs a user-facing docstring")
        if cls.name in self._ops:
            raise DuplicateOperatorError(f"operator {cls.name!r} is already registered")
        self._ops[cls.name] = cls
        return cls

    def get(self, name: str, task_type: TaskType | None = None) -> type[Operator]:
        cls = self._ops.get(name)
        if cls is None or (task_type is not None and cls.task_type != task_type):
            raise UnknownOperatorError(name, self.names(task_type))
        return cls

    def names(self, task_type: TaskType | None = None) -> list[str]:
        return sorted(n for n, c in self._ops.items() if task_type is None or c.task_type == task_type)

    def for_type(self, task_type: TaskType) -> list[type[Operator]]:
        return [self._ops[n] for n in self.names(task_type)]

    def __iter__(self) -> Iterator[type[Operator]]:
        return iter(self._ops.values())

    def __contains__(self, name: str) -> bool:
        return name in self._ops


def _build_default() -> OperatorRegistry:
    from operators.analyse import ImageFeatures
    from operators.box_features import BoxFeatures
    from operators.data_augmentation import DataAugmentation
    from operators.data_cleaning import DataCleaning
    from operators.data_selection import DataSelection
    from operators.data_validation import DataValidation
    from operators.image_issues import ImageIssues

    reg = OperatorRegistry()
    for cls in (ImageFeatures, ImageIssues, BoxFeatures, DataCleaning, DataValidation, DataSelection,
                DataAugmentation):
        reg.register(cls)
    return reg


_default: OperatorRegistry | None = None


def default_registry() -> OperatorRegistry:
    """The built-in operators (built on first use, not at import time)."""
    global _default
    if _default is None:
        _default = _build_default()
    return _default


#: The operators a template runs when the request names none.
DEFAULT_OPERATORS: dict[TaskType, list[str]] = {
    TaskType.ANALYSE: ["image_features", "image_issues", "box_features"],
    TaskType.CLEANING: ["data_cleaning"],
    TaskType.VALIDATION: ["data_validation"],
    TaskType.SELECTION: ["data_selection"],
    TaskType.AUGMENTATION: ["data_augmentation"],
}
