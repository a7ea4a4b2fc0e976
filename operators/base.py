"""The operator contract.

An operator receives an :class:`ImageBatch` (decoded, normalised thumbnails of the
items that decoded, in order) and returns feature columns: one numpy array per
column, aligned with the batch. Aggregation over the whole task (summary
statistics, histograms) is a second, separate step so that partial results from
many chunks on many nodes can be combined in any order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict


class TaskType(str, enum.Enum):
    """The ModelArts processing templates (``template.id``)."""

    ANALYSE = "sys_data_analyse"
    CLEANING = "sys_data_cleaning"
    AUGMENTATION = "sys_data_augmentation"
    VALIDATION = "sys_data_validation"
    SELECTION = "sys_data_selection"


class OperatorError(Exception):
    """An operator could not process a batch (a bug or bad params, not a bad item)."""


class StrictParams(BaseModel):
    """Base for operator params: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ImageBatch:
    """Items of one chunk that decoded, as normalised thumbnails.

    ``pixels`` is ``(n, size, size, 3)`` float32 in [0, 1]; ``width``/``height``
    are the original dimensions. ``keys`` identify the items (relative paths).
    """

    keys: list[str]
    pixels: np.ndarray
    width: np.ndarray
    height: np.ndarray
    file_size: np.ndarray
    formats: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


class Operator:
    """Base class. Subclasses set ``name``, ``task_type``, ``Params`` and a docstring."""

    name: ClassVar[str]
    task_type: ClassVar[TaskType]
    Params: ClassVar[type[StrictParams]] = StrictParams
    #: Feature columns this operator emits, in order.
    columns: ClassVar[tuple[str, ...]] = ()
    #: Resource hints read by jobs/ (CPUs per chunk task).
    num_cpus: ClassVar[float] = 1.0

    def __init__(self, params: StrictParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def process_batch(self, batch: ImageBatch) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def summarize(self, columns: dict[str, np.ndarray]) -> dict:
        """Aggregate this operator's columns over the whole task into ``result``."""
        return {}
