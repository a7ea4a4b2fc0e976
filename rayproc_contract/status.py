"""The task's status codes and the task types: the two enums both sides of the wire speak."""

from __future__ import annotations

import enum
from typing import Literal

__all__ = ["TaskStatus", "TaskType", "TaskTypeName"]


class TaskStatus(enum.IntEnum):
    """ModelArts' processor-task status codes, as the API answers them in ``status``.

    ``is_terminal()`` is a method, as Ray's ``JobStatus.is_terminal()`` is: a terminal task does no more work until
    it is resumed.
    """

    INITIALIZED = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    STOPPED = 4

    def is_terminal(self) -> bool:
        """True for completed, failed and stopped."""
        return self in _TERMINAL

    @property
    def label(self) -> str:
        """The status's name in lower case (``"running"``), as messages and the client show it."""
        return self.name.lower()


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.STOPPED})


class TaskType(str, enum.Enum):
    """The ModelArts processing templates (a task's ``template.id``, the list's ``task_type``)."""

    ANALYSE = "sys_data_analyse"
    CLEANING = "sys_data_cleaning"
    AUGMENTATION = "sys_data_augmentation"
    VALIDATION = "sys_data_validation"
    SELECTION = "sys_data_selection"


#: The task types as plain strings, for fields and parameters that carry the value itself (the API documents
#: them as a list of strings, not as a named schema).
TaskTypeName = Literal[tuple(t.value for t in TaskType)]  # type: ignore[valid-type]
