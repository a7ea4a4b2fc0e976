"""Data augmentation (``sys_data_augmentation``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from operators import annotations as A
from operators import transforms as T
from operators.base import (
    ITEM_ERRORS,
    Finalized,
    ImageBatch,
    Operator,
    OperatorError,
    RecordTable,
    StrictParams,
    TaskType,
)
from operators.image_io import ItemError, load_rgb
from operators.pass_on import pass_on_row
from operators.pipeline import BOXES, ITEM, LABEL

AUGMENTED = "augmented"
AUGMENTED_DIR = "augmented"
AUGMENTED_FILE = "augmented.jsonl"

TransformName = Literal[tuple(T.TRANSFORMS)]  # type: ignore[valid-type]


class StepParam(StrictParams):
    name: TransformName
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    params: dict[str, Any] = {}


class DataAugmentation(Operator):
    """Writes ``copies`` augmented versions of every image, with its boxes transformed alike.

    ``steps`` is a composition applied in order, each with a probability:
    ``hflip``, ``vflip``, ``rotate`` (``degrees`` range), ``random_resized_crop``
    (``scale``, ``ratio``, ``size``), ``resize`` (``size``), ``color_jitter``
    (``brightness``, ``contrast``, ``saturation``), ``gaussian_noise`` (``sigma``)
    and ``gaussian_blur`` (``radius`` range). Boxes move with the pixels, are
    clipped to the image, and are dropped when less than ``min_visible`` of them
    stays inside. Reproducible: the same seed gives the same bytes on any node.
    Output: images under ``augmented/`` and ``augmented.jsonl``, a manifest of the
    new items (with labels and boxes) that a next task can take as its source. An
    item whose boxes are malformed fails alone with ``bad_annotation``.
    """

    name = "data_augmentation"
    task_type = TaskType.AUGMENTATION
    passes_on = AUGMENTED_FILE
    columns: ClassVar[tuple[str, ...]] = (AUGMENTED,)

    class Params(StrictParams):
        steps: Annotated[list[StepParam], Field(min_length=1, max_length=16)] = [
            StepParam(name="hflip", probability=0.5),
            StepParam(name="rotate", probability=0.5, params={"degrees": [-10, 10]}),
            StepParam(name="color_jitter", probability=0.5),
        ]
        copies: Annotated[int, Field(ge=1, le=32)] = 2
        seed: int = 0
        output_format: Literal["png", "jpeg"] = "png"
        min_visible: Annotated[float, Field(gt=0, le=1)] = T.DEFAULT_MIN_VISIBLE

        @model_validator(mode="after")
        def _steps_work(self) -> DataAugmentation.Params:
            for step in self.steps:
                size = step.params.get("size")
                if isinstance(size, (list, tuple)) and any(isinstance(v, (int, float)) and v > 8192 for v in size):
                    raise ValueError(f"step {step.name!r}: size is at most 8192 pixels per side")
            T.validate_steps(self._as_steps())
            return self

        def _as_steps(self) -> list[T.Step]:
            return [T.Step(s.name, s.probability, dict(s.params)) for s in self.steps]

    def process_batch(self, batch: ImageBatch) -> dict[str, list]:
        if batch.output_dir is None:
            raise OperatorError("data_augmentation needs an output directory")
        p = self.params
        steps = p._as_steps()
        ext = "png" if p.output_format == "png" else "jpg"
        outputs: list[list[dict]] = []
        errors: list[ItemError | None] = []
        for item, path in zip(batch.items, batch.paths, strict=True):
            boxes, labels, problems = A.parse_boxes(list(item.boxes))
            if problems:
                errors.append(ItemError(A.BAD_ANNOTATION, f"malformed boxes: {'; '.join(problems)}"))
                outputs.append([])
                continue
            errors.append(None)
            image = load_rgb(path)
            results = T.augment_n(image, boxes, steps, T.seed_for_key(p.seed, item.key), p.copies,
                                  min_visible=p.min_visible)
            stem = PurePosixPath(item.key).with_suffix("").as_posix().lstrip("/")
            made = []
            for i, out in enumerate(results):
                rel = f"{AUGMENTED_DIR}/{stem}__aug{i}.{ext}"
                target = os.path.join(batch.output_dir, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                out.image.save(target, format="PNG" if ext == "png" else "JPEG", quality=95)
                made.append({"image": rel, "boxes": T.join_annotations(out.boxes, T.select_labels(labels, out.kept)),
                             "boxes_dropped": int((~out.kept).sum())})
            outputs.append(made)
        return {AUGMENTED: outputs, ITEM_ERRORS: errors}

    def finalize(self, table: RecordTable) -> Finalized:
        outputs = dropped = 0
        for made in table.iter_values(AUGMENTED, []):
            outputs += len(made)
            dropped += sum(m["boxes_dropped"] for m in made)
        summary = {"inputs": table.ok_count, "outputs": outputs, "boxes_dropped": dropped,
                   "manifest": AUGMENTED_FILE}
        return Finalized(summary={"augmentation": summary}, files={AUGMENTED_FILE: _manifest_rows(table)})


def _manifest_rows(table: RecordTable) -> Iterator[dict]:
    """One row per augmented image, in input order: a manifest a next task can read."""
    columns = (table.iter_values(ITEM), table.iter_values(LABEL), table.iter_values(BOXES),
               table.iter_values(AUGMENTED, []))
    for key, label, boxes, made in zip(*columns, strict=True):
        for out in made:
            yield pass_on_row(out["image"], label, out["boxes"] if out["boxes"] or boxes else None,
                              source_item=key)
