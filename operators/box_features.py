"""Target-box statistics for analysis."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from operators import annotations as A
from operators import features as F
from operators.analyse import HEIGHT, WIDTH
from operators.base import (
    Finalized,
    ImageBatch,
    Operator,
    RecordTable,
    StrictParams,
    TaskType,
)
from operators.pipeline import BOXES

BOX_COUNT = "box_count"
#: Images whose boxes are parsed at a time in finalize.
_BLOCK = 1024


class BoxFeatures(Operator):
    """Target-box features, for items that carry boxes: boxes per image, box area ratio
    (box area / image area), box aspect ratio (width / height), boxes per label, and
    boxes (partly) outside the image; each ratio with a histogram in ``result.boxes``.
    Items without boxes count as images with zero boxes."""

    name = "box_features"
    task_type = TaskType.ANALYSE
    requires = ("image_features",)
    columns: ClassVar[tuple[str, ...]] = (BOX_COUNT,)

    class Params(StrictParams):
        histogram_bins: Annotated[int, Field(ge=2, le=200)] = 20

    def process_batch(self, batch: ImageBatch) -> dict[str, list]:
        return {BOX_COUNT: [len(item.boxes) for item in batch.items]}

    def finalize(self, table: RecordTable) -> Finalized:
        if all(boxes is None for boxes in table.iter_values(BOXES)):
            return Finalized(summary={"boxes": {"total_boxes": 0}})
        widths, heights = table.column(WIDTH), table.column(HEIGHT)
        nothing = A.parse_boxes(None)  # shared by every item without boxes: only ever read
        per_image, area, aspect = [], [], []
        by_label: Counter[str] = Counter()
        totals: Counter[str] = Counter()
        raw = table.iter_values(BOXES)
        # A block of images at a time: only one block's parsed boxes exist at once.
        for start in range(0, len(widths), _BLOCK):
            parsed = [nothing if boxes is None else A.parse_boxes(boxes) for boxes in itertools.islice(raw, _BLOCK)]
            stop = start + len(parsed)
            stats = A.box_statistics([b for b, _, _ in parsed], [labels for _, labels, _ in parsed],
                                     widths[start:stop], heights[start:stop])
            per_image.append(stats[A.BOXES_PER_IMAGE])
            area.append(stats[A.AREA_RATIO])
            aspect.append(stats[A.ASPECT_RATIO])
            by_label.update(stats[A.BOXES_PER_LABEL])
            for key in (A.TOTAL_BOXES, A.IMAGES_WITH_BOXES, A.BOXES_OUTSIDE_IMAGE, A.BOXES_PARTLY_OUTSIDE_IMAGE):
                totals[key] += int(stats[key])
            totals["malformed"] += sum(len(problems) for _, _, problems in parsed)
        if not totals[A.TOTAL_BOXES]:
            return Finalized(summary={"boxes": {"total_boxes": 0}})
        bins = self.params.histogram_bins
        area_ratio, aspect_ratio = np.concatenate(area), np.concatenate(aspect)
        area_ratio, aspect_ratio = area_ratio[np.isfinite(area_ratio)], aspect_ratio[np.isfinite(aspect_ratio)]
        boxes_per_image = np.concatenate(per_image).astype(np.float64)
        summary = {
            "total_boxes": totals[A.TOTAL_BOXES],
            "images_with_boxes": totals[A.IMAGES_WITH_BOXES],
            "boxes_per_label": dict(sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0]))),
            "boxes_outside_image": totals[A.BOXES_OUTSIDE_IMAGE],
            "boxes_partly_outside_image": totals[A.BOXES_PARTLY_OUTSIDE_IMAGE],
            "malformed_boxes": totals["malformed"],
            "boxes_per_image": {**F.describe(boxes_per_image), "histogram": F.histogram(boxes_per_image, bins)},
            "box_area_ratio": {**F.describe(area_ratio), "histogram": F.histogram(area_ratio, bins, (0.0, 1.0))},
            "box_aspect_ratio": {**F.describe(aspect_ratio), "histogram": F.histogram(aspect_ratio, bins)},
        }
        return Finalized(summary={"boxes": summary})
