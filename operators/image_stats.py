"""Per-image statistics of a batch of thumbnails, in one pass over the batch, a block of images at a time.

The analysis operators ask for named statistics (:data:`STATISTICS`); the batch computes every one
they will ask for in a single pass (:meth:`operators.base.ImageBatch.statistic`). Each block of about
:data:`BLOCK_PIXELS` pixels gets its own :class:`operators.features.Planes`, so the planes the
statistics share (channels, luma, perceived brightness, 8-bit gray, the layout) are made once per
block and used while they are still in the processor's cache: made for a whole chunk of 64
thumbnails at once, each float plane is 4 MiB, and every statistic that reads one waits on memory.

Every statistic is one of the vectorised functions of :mod:`operators.features` or
:mod:`operators.hashing`, whose values do not depend on which other images share the batch, so the
result is the same whatever the block size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from operators import features as F
from operators import hashing as H

#: Pixels per block (eight 128 x 128 thumbnails): their planes fit in a core's second-level cache.
BLOCK_PIXELS = 8 * 128 * 128


@dataclass(frozen=True)
class Block:
    """One block of a batch: its planes and the thumbnail's enlargement of each image (see
    :func:`operators.features.upscale_factors`)."""

    planes: F.Planes
    upscale: np.ndarray


BRIGHTNESS = "brightness"
CONTRAST = "contrast"
SATURATION = "saturation"
COLOURFULNESS = "colourfulness"
ENTROPY = "entropy"
GRAYSCALE = "grayscale"
LAPLACIAN_VARIANCE = "laplacian_variance"
#: ``(n, 2)``: the 99th and the 5th percentile of perceived brightness (``np.percentile``'s values).
BRIGHTNESS_PERCENTILES = "brightness_percentiles"
PHASH = "phash"
LAYOUT = "layout"
#: The layout of the image brightened and clipped (:func:`operators.features.brightened_layout`).
BRIGHT_LAYOUT = "bright_layout"
SHARPNESS = "sharpness"

#: Name -> how one block's values are computed.
STATISTICS: dict[str, Callable[[Block], np.ndarray]] = {
    BRIGHTNESS: lambda b: F.brightness(b.planes),
    CONTRAST: lambda b: F.contrast(b.planes),
    SATURATION: lambda b: F.saturation(b.planes),
    COLOURFULNESS: lambda b: F.colourfulness(b.planes),
    ENTROPY: lambda b: F.entropy(b.planes),
    GRAYSCALE: lambda b: F.is_grayscale(b.planes),
    LAPLACIAN_VARIANCE: lambda b: F.laplacian_variance(b.planes),
    BRIGHTNESS_PERCENTILES: lambda b: F.row_percentiles(b.planes.hsp, [99, 5]).T,
    PHASH: lambda b: H.perceptual_hash_of_luma(b.planes.luma),
    LAYOUT: lambda b: F.layout_descriptor(b.planes),
    BRIGHT_LAYOUT: lambda b: F.brightened_layout(b.planes),
    SHARPNESS: lambda b: F.edge_sharpness(b.planes, b.upscale),
}


def compute(rgb: np.ndarray, names: Iterable[str], *, histograms: np.ndarray | None = None,
            upscale: np.ndarray | None = None, block_pixels: int = BLOCK_PIXELS) -> dict[str, np.ndarray]:
    """The statistics ``names`` of the thumbnails ``rgb`` (``(n, h, w, 3)`` uint8), each an array whose
    first axis is the image: one pass over the batch, block by block. ``histograms`` are the thumbnails'
    768-bin channel counts when the decoder made them; ``upscale`` is ``(n, 2)`` (1 when not given)."""
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in STATISTICS]
    if unknown:
        raise KeyError(f"unknown image statistics {unknown}; known: {sorted(STATISTICS)}")
    rgb = np.asarray(rgb)
    n = len(rgb)
    factors = np.ones((n, 2), dtype=np.intp) if upscale is None else np.asarray(upscale, dtype=np.intp)
    size = max(1, rgb.shape[1] * rgb.shape[2]) if rgb.ndim == 4 else 1
    step = max(1, block_pixels // size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for start in range(0, n, step):
        end = min(n, start + step)
        planes = F.Planes(rgb[start:end], None if histograms is None else histograms[start:end])
        block = Block(planes, factors[start:end])
        for name in wanted:
            parts[name].append(np.asarray(STATISTICS[name](block)))
    if n == 0:  # the shapes and types of one black image's values, with no rows
        one = F.Planes(np.zeros((1, *rgb.shape[1:]), dtype=np.uint8))
        return {name: np.asarray(STATISTICS[name](Block(one, np.ones((1, 2), np.intp))))[:0] for name in wanted}
    return {name: np.concatenate(values) for name, values in parts.items()}
