"""The operator contract.

An operator works in up to two stages:

``process_batch`` (map, on any node): receives an :class:`ImageBatch` (the items of
one chunk that decoded, as normalised thumbnails, with their annotations) and
returns per-item values, one sequence per column, aligned with the batch.

``finalize`` (reduce, once per task, in the job driver): sees every item's record
through a :class:`RecordTable` and returns what is only known across the whole
dataset: summaries and histograms, duplicate groups, the items a rule removes or
a selection keeps. It may add per-item fields and name JSON Lines files to write.

Splitting the two keeps the per-chunk work combinable in any order, on any node,
and resumable chunk by chunk.

An operator whose task hands items to a next task names the file it writes them
to in ``passes_on``; its rows have the one shape of :mod:`operators.pass_on`, the
shape of a JSON Lines manifest line, so that file can be a next task's source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from operators import image_stats
from operators.features import Planes, upscale_factors
from operators.records import PerItem, RecordTable  # noqa: F401 (the reduce stage's part of the contract)
from rayproc_contract.status import TaskType


class OperatorError(Exception):
    """An operator could not process a batch (a bug or bad params, not a bad item)."""


#: Column ``process_batch`` may return to fail single items: per item ``None`` (fine) or an
#: :class:`operators.image_io.ItemError` (the item fails with its code and message; the others go on).
ITEM_ERRORS = "item_errors"


class StrictParams(BaseModel):
    """Base for operator params: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Item:
    """An image and its optional annotations: a class ``label`` and target ``boxes``
    (``[{"bbox": [x, y, w, h], "label": "..."}]``, pixels, top-left origin)."""

    key: str
    label: str | None = None
    boxes: tuple = ()

    @classmethod
    def of(cls, raw: str | dict) -> Item:
        if isinstance(raw, str):
            return cls(raw)
        return cls(raw["key"], raw.get("label"), tuple(raw.get("boxes") or ()))

    def to_json(self) -> str | dict:
        if self.label is None and not self.boxes:
            return self.key
        out: dict = {"key": self.key}
        if self.label is not None:
            out["label"] = self.label
        if self.boxes:
            out["boxes"] = list(self.boxes)
        return out


@dataclass
class ImageBatch:
    """Items of one chunk that decoded, as normalised thumbnails.

    ``rgb`` is ``(n, size, size, 3)`` uint8; :attr:`pixels` is the same as float32
    in [0, 1], and :attr:`planes` holds the arrays several features share, each
    computed once per batch whichever operator asks first. ``width``/``height``
    are the original dimensions; ``paths`` are absolute, for operators that need
    the full-resolution image or the file's bytes. ``histograms`` are the
    thumbnails' 768-bin channel histograms when the decoder counted them.
    ``previews`` (64 px grayscale) are there only when an operator's
    ``needs_previews`` asked for them.
    ``output_dir`` is where an operator may write per-item files (augmented
    images), or None. :meth:`statistic` gives the per-image statistics of
    :mod:`operators.image_stats`: every one in ``wanted_statistics`` (the
    pipeline puts there what its operators declare) is computed in the same
    pass over the thumbnails as the first one asked for.
    """

    items: list[Item]
    paths: list[str]
    rgb: np.ndarray
    width: np.ndarray
    height: np.ndarray
    file_size: np.ndarray
    formats: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    previews: list[np.ndarray] = field(default_factory=list)
    histograms: np.ndarray | None = None
    output_dir: str | None = None
    wanted_statistics: tuple[str, ...] = ()
    _statistics: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def statistic(self, name: str) -> np.ndarray:
        """One of :data:`operators.image_stats.STATISTICS`, per image (first axis)."""
        if name not in self._statistics:
            names = [name, *(s for s in self.wanted_statistics if s not in self._statistics)]
            upscale = upscale_factors(self.width, self.height, self.rgb.shape[1])
            self._statistics.update(image_stats.compute(self.rgb, names, histograms=self.histograms,
                                                        upscale=upscale))
        return self._statistics[name]

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    @cached_property
    def pixels(self) -> np.ndarray:
        return self.rgb.astype(np.float32) / np.float32(255.0)

    @cached_property
    def planes(self) -> Planes:
        return Planes(self.rgb, self.histograms)


@dataclass
class Finalized:
    """What :meth:`Operator.finalize` adds: ``summary`` goes into the task's ``result``
    (a ``features`` key is merged with other operators'), ``files`` are JSON Lines
    files (name -> rows) written to the output path.

    Rows may be any iterable, read once when the file is written, after every
    operator has finalized: a generator or :class:`PerItem` over compact arrays
    keeps a file of one row per item from existing all at once in memory.

    ``copies`` are input items the job copies into the output, as (item key, path
    relative to the output): the job does the reading and writing, whether the
    input and the output are server folders or buckets."""

    summary: dict = field(default_factory=dict)
    files: dict[str, Iterable[dict]] = field(default_factory=dict)
    copies: Iterable[tuple[str, str]] = ()


class Operator:
    """Base class. Subclasses set ``name``, ``task_type``, ``Params`` and a docstring."""

    name: ClassVar[str]
    task_type: ClassVar[TaskType]
    Params: ClassVar[type[StrictParams]] = StrictParams
    #: Feature columns this operator emits, in order.
    columns: ClassVar[tuple[str, ...]] = ()
    #: Operators that must run before this one; added with their defaults when the request omits them.
    requires: ClassVar[tuple[str, ...]] = ()
    #: Per-image statistics (:data:`operators.image_stats.STATISTICS`) ``process_batch`` reads with
    #: :meth:`ImageBatch.statistic`: the pipeline has every operator's computed in one pass.
    statistics: ClassVar[tuple[str, ...]] = ()
    #: Resource hints read by jobs/ (CPUs per chunk task).
    num_cpus: ClassVar[float] = 1.0
    #: The output file holding the items this operator's task passes on to a next task (rows of
    #: :func:`operators.pass_on.pass_on_row`), or None if it passes none on.
    passes_on: ClassVar[str | None] = None

    def __init__(self, params: StrictParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    @property
    def needs_previews(self) -> bool:
        """Whether :attr:`ImageBatch.previews` must be made for this operator (they cost a resize per image)."""
        return False

    def process_batch(self, batch: ImageBatch) -> dict[str, Sequence]:
        """Per-item values for the decoded items of one chunk (default: none)."""
        return {}

    def finalize(self, table: RecordTable) -> Finalized:
        """Whole-task results (default: none)."""
        return Finalized()
