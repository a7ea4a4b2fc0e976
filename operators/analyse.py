"""Feature analysis (``sys_data_analyse``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from operators import features as F
from operators import image_stats as S
from operators.base import (
    Finalized,
    ImageBatch,
    Operator,
    RecordTable,
    StrictParams,
    TaskType,
)

WIDTH = "width"
HEIGHT = "height"
ASPECT_RATIO = "aspect_ratio"
FILE_SIZE = "file_size"
BRIGHTNESS = "brightness"
CONTRAST = "contrast"
BLUR_SCORE = "blur_score"
SATURATION = "saturation"
COLOURFULNESS = "colourfulness"
ENTROPY = "entropy"
GRAYSCALE = "grayscale"

#: Numeric per-image features (usable in selection rules and cleaning thresholds).
FEATURE_COLUMNS = (WIDTH, HEIGHT, ASPECT_RATIO, FILE_SIZE, BRIGHTNESS, CONTRAST, BLUR_SCORE, SATURATION,
                   COLOURFULNESS, ENTROPY)

#: Features with a fixed natural range get fixed histogram ranges, so charts of
#: different tasks line up; the others use the observed range.
_FIXED_RANGES: dict[str, tuple[float, float]] = {
    BRIGHTNESS: (0.0, 1.0), CONTRAST: (0.0, 0.5), SATURATION: (0.0, 1.0), ENTROPY: (0.0, 24.0)}


class ImageFeatures(Operator):
    """Per-image features: size, aspect ratio, file size, brightness, contrast, blur, colour and information.

    - ``width``, ``height``, ``aspect_ratio`` (width / height), ``file_size`` (bytes), ``format``, ``mode``.
    - ``brightness``: mean perceived brightness in [0, 1] (0 is black).
    - ``contrast``: standard deviation of luma in [0, 0.5].
    - ``blur_score``: variance of the Laplacian of a normalised 128x128 grayscale
      thumbnail; low values mean blurry.
    - ``saturation``: mean HSV saturation in [0, 1]; ``colourfulness``: Hasler and
      Suesstrunk's metric (0 for gray images).
    - ``entropy``: bits of information in the colour histogram (low: flat, empty images).
    - ``grayscale``: true when all three channels agree (gray content in any mode).

    ``result`` holds summary statistics and a histogram per feature; the
    per-image table is written to ``features.jsonl`` in the task's output path.
    """

    name = "image_features"
    task_type = TaskType.ANALYSE
    columns: ClassVar[tuple[str, ...]] = (*FEATURE_COLUMNS, GRAYSCALE)
    statistics: ClassVar[tuple[str, ...]] = (S.BRIGHTNESS, S.CONTRAST, S.LAPLACIAN_VARIANCE, S.SATURATION,
                                             S.COLOURFULNESS, S.ENTROPY, S.GRAYSCALE)

    class Params(StrictParams):
        histogram_bins: Annotated[int, Field(ge=2, le=200, description="Bins per feature histogram.")] = 20

    def process_batch(self, batch: ImageBatch) -> dict[str, np.ndarray]:
        width = batch.width.astype(np.int64)
        height = batch.height.astype(np.int64)
        return {
            WIDTH: width,
            HEIGHT: height,
            ASPECT_RATIO: width / np.maximum(height, 1),
            FILE_SIZE: batch.file_size.astype(np.int64),
            BRIGHTNESS: batch.statistic(S.BRIGHTNESS),
            CONTRAST: batch.statistic(S.CONTRAST),
            BLUR_SCORE: batch.statistic(S.LAPLACIAN_VARIANCE),
            SATURATION: batch.statistic(S.SATURATION),
            COLOURFULNESS: batch.statistic(S.COLOURFULNESS),
            ENTROPY: batch.statistic(S.ENTROPY),
            GRAYSCALE: batch.statistic(S.GRAYSCALE),
        }

    def finalize(self, table: RecordTable) -> Finalized:
        bins = self.params.histogram_bins
        out = {}
        for name in FEATURE_COLUMNS:
            values = table.column(name)
            out[name] = {**F.describe(values), "histogram": F.histogram(values, bins, _FIXED_RANGES.get(name))}
        grayscale = table.values(GRAYSCALE)
        return Finalized(summary={"features": out, "grayscale_count": int(sum(bool(g) for g in grayscale))})
