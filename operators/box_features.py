"""Target-box statistics for analysis."""

from __future__ import annotations

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

BOX_COUNT = "box_count"


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
        parsed = [A.parse_boxes(r.get("boxes")) for r in table.ok]
        if not any(len(b) for b, _, _ in parsed):
            return Finalized(summary={"boxes": {"total_boxes": 0}})
        stats = A.box_statistics([b for b, _, _ in parsed], [labels for _, labels, _ in parsed],
                                 table.column(WIDTH), table.column(HEIGHT))
        bins = self.params.histogram_bins
        area = np.asarray(stats[A.AREA_RATIO], dtype=np.float64)
        aspect = np.asarray(stats[A.ASPECT_RATIO], dtype=np.float64)
        area, aspect = area[np.isfinite(area)], aspect[np.isfinite(aspect)]
        per_image = np.asarray(stats[A.BOXES_PER_IMAGE], dtype=np.float64)
        summary = {
            "total_boxes": int(stats[A.TOTAL_BOXES]),
            "images_with_boxes": int(stats[A.IMAGES_WITH_BOXES]),
            "boxes_per_label": dict(stats[A.BOXES_PER_LABEL]),
            "boxes_outside_image": int(stats[A.BOXES_OUTSIDE_IMAGE]),
            "boxes_partly_outside_image": int(stats[A.BOXES_PARTLY_OUTSIDE_IMAGE]),
            "malformed_boxes": sum(len(problems) for _, _, problems in parsed),
            "boxes_per_image": {**F.describe(per_image), "histogram": F.histogram(per_image, bins)},
            "box_area_ratio": {**F.describe(area), "histogram": F.histogram(area, bins, (0.0, 1.0))},
            "box_aspect_ratio": {**F.describe(aspect), "histogram": F.histogram(aspect, bins)},
        }
        return Finalized(summary={"boxes": summary})
