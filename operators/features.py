"""Vectorised per-image numerics over a batch of 8-bit RGB thumbnails ``(n, h, w, 3)``.

The arrays several features share (channel planes, luma, per-pixel perceived
brightness, channel extremes, histograms, moments, the layout) are computed once
per batch by :class:`Planes` and reused, so adding a feature costs only its own
arithmetic. Every function accepts either a ``uint8`` array or a :class:`Planes`
of one.

The batch is handed to OpenCV as one tall image (the thumbnails stacked row
after row): a filter or resize runs once per batch, not once per image, and
per-image counts come from one two-dimensional histogram whose first axis is
the image's position in the batch. Statistics that only need sums of integers
(channel means, spreads, the opponent colours of colourfulness, the contrast of
luma) are computed from exact integer sums instead of a float plane per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import cv2
import numpy as np

# ITU-R BT.601 luma weights for grayscale conversion.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)
# Perceived-brightness weights (the HSP model, as cleanvision uses).
HSP_WEIGHTS = np.array([0.241, 0.691, 0.068], dtype=np.float64)
#: Bins of the concatenated three-channel histogram (Pillow's ``Image.histogram()`` layout for RGB).
HISTOGRAM_BINS = 768

_LUMA32 = LUMA_WEIGHTS.astype(np.float32)
_HSP32 = (HSP_WEIGHTS / 255.0**2).astype(np.float32)  # levels are 0-255, brightness is in [0, 1]
_LEVELS = 256
_SQUARES = (np.arange(_LEVELS, dtype=np.float64) ** 2)
# Images counted per two-dimensional histogram: their position in the batch is an 8-bit plane, and the
# last value marks pixels that are not counted.
_HIST_BLOCK = _LEVELS - 1


def counts_by_image(values: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """``(n, 256)`` per-image counts of the levels of ``values`` (``(n, ...)`` uint8), leaving out the
    pixels where ``skip`` (same shape, uint8) is 255.

    One OpenCV histogram over the whole batch, whose other axis is the image's position: per-image
    ``calcHist`` calls cost more in call overhead than in counting, and OpenCV's masked histogram is
    several times slower than an unmasked one, so skipped pixels are given a position of their own."""
    values = np.ascontiguousarray(values, dtype=np.uint8)
    n = len(values)
    flat = values.reshape(n, -1)
    out = np.empty((n, _LEVELS), dtype=np.float64)
    for start in range(0, n, _HIST_BLOCK):
        block = flat[start:start + _HIST_BLOCK]
        k = len(block)
        position = _positions(k, block.shape[1])
        if skip is not None:
            position = cv2.bitwise_or(position, np.ascontiguousarray(skip.reshape(n, -1)[start:start + k]))
        hist = cv2.calcHist([position, block], [0, 1], None, [k, _LEVELS], [0, k, 0, _LEVELS])
        out[start:start + k] = hist
    return out


_POSITIONS: dict[tuple[int, int], np.ndarray] = {}


def _positions(k: int, m: int) -> np.ndarray:
    """``(k, m)`` uint8: each row its own index (kept for the few shapes a process sees)."""
    key = (k, m)
    if key not in _POSITIONS:
        if len(_POSITIONS) >= 8:
            _POSITIONS.pop(next(iter(_POSITIONS)))
        _POSITIONS[key] = np.repeat(np.arange(k, dtype=np.uint8), m).reshape(k, m)
    return _POSITIONS[key]


class Planes:
    """Derived arrays of one batch, each computed on first use.

    ``histograms`` may be given when the decoder already counted them; otherwise they are counted here.
    """

    def __init__(self, rgb: np.ndarray, histograms: np.ndarray | None = None) -> None:
        rgb = np.asarray(rgb)
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB images (n, h, w, 3), got {rgb.dtype} {rgb.shape}")
        self.rgb = np.ascontiguousarray(rgb)
        if histograms is not None:
            histograms = np.asarray(histograms, dtype=np.int64).reshape(len(rgb), HISTOGRAM_BINS)
            self.__dict__["histograms"] = histograms  # seeds the cached property below

    def __len__(self) -> int:
        return self.rgb.shape[0]

    @property
    def pixel_count(self) -> int:
        return self.rgb.shape[1] * self.rgb.shape[2]

    @cached_property
    def stacked(self) -> np.ndarray:
        """The batch as one ``(n * h, w, 3)`` image (a view), for OpenCV."""
        n, h, w, _ = self.rgb.shape
        return self.rgb.reshape(n * h, w, 3)

    @cached_property
    def channels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The red, green and blue planes, each ``(n, h, w)`` uint8 and contiguous."""
        n, h, w, _ = self.rgb.shape
        if n * h == 0 or w == 0:
            return tuple(np.zeros((n, h, w), np.uint8) for _ in range(3))  # type: ignore[return-value]
        return tuple(c.reshape(n, h, w) for c in cv2.split(self.stacked))  # type: ignore[return-value]

    @cached_property
    def histograms(self) -> np.ndarray:
        """``(n, 768)`` counts: red levels, then green, then blue."""
        return np.concatenate([counts_by_image(c) for c in self.channels], axis=1).astype(np.int64)

    @cached_property
    def values(self) -> np.ndarray:
        """``(n, h, w, 3)`` float32 copy of the levels (0-255)."""
        return self.rgb.astype(np.float32)

    @cached_property
    def luma(self) -> np.ndarray:
        """``(n, h, w)`` float32 luma on the 0-255 scale."""
        return self.values @ _LUMA32

    @cached_property
    def gray(self) -> np.ndarray:
        """``(n, h, w)`` uint8 luma (OpenCV's BT.601 conversion, rounded), for 8-bit filters."""
        n, h, w, _ = self.rgb.shape
        if n * h == 0 or w == 0:
            return np.zeros((n, h, w), np.uint8)
        return cv2.cvtColor(self.stacked, cv2.COLOR_RGB2GRAY).reshape(n, h, w)

    @cached_property
    def hsp(self) -> np.ndarray:
        """``(n, h * w)`` float32 perceived brightness per pixel, in [0, 1]."""
        v = self.values
        return np.sqrt((v * v) @ _HSP32).reshape(len(self), self.pixel_count)

    @cached_property
    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel max and min over the channels (uint8)."""
        r, g, b = self.channels
        return np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)

    @cached_property
    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Per image, the channels' means ``(n, 3)`` and their covariance ``(n, 3, 3)`` (population), from
        exact integer sums: the channels' from the histograms, the cross terms from the squared differences
        of each pair of channels (``sum (a - b)^2 = sum a^2 + sum b^2 - 2 sum ab``)."""
        n = len(self)
        m = max(self.pixel_count, 1)
        hist = self.histograms.reshape(n, 3, _LEVELS).astype(np.float64)
        sums = (hist * np.arange(_LEVELS, dtype=np.float64)).sum(axis=2)  # (n, 3), exact integers
        squares = (hist * _SQUARES).sum(axis=2)
        r, g, b = self.channels
        second = np.empty((n, 3, 3))
        second[:, [0, 1, 2], [0, 1, 2]] = squares
        for (i, a), (j, c) in (((0, r), (1, g)), ((0, r), (2, b)), ((1, g), (2, b))):
            apart = np.array([cv2.norm(a[k], c[k], cv2.NORM_L2SQR) for k in range(n)], dtype=np.float64)
            second[:, i, j] = second[:, j, i] = (squares[:, i] + squares[:, j] - apart) / 2
        mean = sums / m
        return mean, second / m - mean[:, :, None] * mean[:, None, :]

    @cached_property
    def layout(self) -> np.ndarray:
        """:func:`layout_descriptor` at :data:`LAYOUT_SIDE`, shared by the features that use it."""
        return _block_means(self.luma, LAYOUT_SIDE)


def as_planes(x: np.ndarray | Planes) -> Planes:
    return x if isinstance(x, Planes) else Planes(x)


def brightness(x: np.ndarray | Planes) -> np.ndarray:
    """Mean perceived brightness per image, in [0, 1] (0 black, 1 white)."""
    return as_planes(x).hsp.mean(axis=1, dtype=np.float64)


def contrast(x: np.ndarray | Planes) -> np.ndarray:
    """Standard deviation of luma per image, in [0, 0.5]: from the channels' covariance, since luma is a
    weighted sum of them (``var(w . rgb) = w' C w``)."""
    _, cov = as_planes(x).moments
    return np.sqrt(np.maximum(_quadratic(cov, _LUMA32.astype(np.float64)), 0.0)) / 255.0


def _quadratic(cov: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v' C v`` per image, term by term: elementwise, so an image's value never depends on its batch."""
    out = np.zeros(len(cov))
    for i in range(3):
        for j in range(3):
            out += (v[i] * v[j]) * cov[:, i, j]
    return out


def saturation(x: np.ndarray | Planes) -> np.ndarray:
    """Mean HSV saturation per image, in [0, 1] (0 for gray pixels)."""
    p = as_planes(x)
    hi, lo = p.extremes
    sat = cv2.subtract(hi, lo).astype(np.float32) / np.maximum(hi, 1).astype(np.float32)
    return sat.reshape(len(p), -1).mean(axis=1, dtype=np.float64)


def colourfulness(x: np.ndarray | Planes) -> np.ndarray:
    """Hasler and Suesstrunk's colourfulness metric (on a 0-255 scale): ~0 gray, >100 very colourful.

    ``std(rg, yb) + 0.3 mean(rg, yb)`` with ``rg = R - G`` and ``yb = (R + G) / 2 - B``; both are
    linear in the channels, so their means and spreads follow from the channels' moments."""
    mean, cov = as_planes(x).moments
    rg, yb = np.array([1.0, -1.0, 0.0]), np.array([0.5, 0.5, -1.0])
    spread = [np.sqrt(np.maximum(_quadratic(cov, v), 0.0)) for v in (rg, yb)]
    return np.hypot(*spread) + 0.3 * np.hypot(mean[:, 0] - mean[:, 1], 0.5 * (mean[:, 0] + mean[:, 1]) - mean[:, 2])


def entropy(x: np.ndarray | Planes) -> np.ndarray:
    """Shannon entropy (bits) of the 768-bin histogram of the three 8-bit channels, as Pillow's
    ``Image.entropy()`` computes it: low values mean little information (flat or nearly flat images)."""
    counts = as_planes(x).histograms.astype(np.float64)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1)


def is_grayscale(x: np.ndarray | Planes, tolerance: int = 2) -> np.ndarray:
    """True where every pixel's channels agree within ``tolerance`` levels (gray content, whatever the mode)."""
    p = as_planes(x)
    hi, lo = p.extremes
    if p.pixel_count == 0:
        return np.ones(len(p), dtype=bool)
    return cv2.subtract(hi, lo).reshape(len(p), -1).max(axis=1) <= tolerance


def laplacian_variance(x: np.ndarray | Planes) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of luma (on a 0-255 scale) per image, over the interior pixels.

    A sharp image has strong second derivatives; a blurred one does not, so a
    low value means blurry. Computed on the fixed-size thumbnail so that scores
    are comparable across image sizes. The batch is filtered as one tall image: the rows where two
    thumbnails meet are the ones each image's border leaves out.
    """
    luma = as_planes(x).luma
    n, h, w = luma.shape
    if min(h, w) < 3:  # no interior pixel
        return np.zeros(n, dtype=np.float64)
    lap = cv2.Laplacian(luma.reshape(n * h, w), cv2.CV_32F, ksize=1).reshape(n, h, w)  # 4-neighbour kernel
    lap[:, [0, -1], :] = 0
    lap[:, :, [0, -1]] = 0
    interior = lap.reshape(n, -1).astype(np.float64)
    count = (h - 2) * (w - 2)
    mean = interior.sum(axis=1) / count
    return np.maximum(np.square(interior).sum(axis=1) / count - mean * mean, 0.0)


#: Side of the block-mean grid of :func:`layout_descriptor` (its length is the square of this).
LAYOUT_SIDE = 16
# Edge sharpness: a pixel is on an edge when the luma range across the window around it is at least
# this share of the image's own contrast (and at least EDGE_MIN_STEP levels), so flat regions and
# faint texture never count, whatever the image's brightness or contrast.
EDGE_WINDOW = 7
EDGE_FRACTION = 0.3
EDGE_MIN_STEP = 4.0
# An image with fewer edge pixels than this per axis has no edges to judge (flat, empty images).
EDGE_MIN_PIXELS = 16
# The sharpest edges decide: a picture with a sharp subject on a soft background is sharp.
EDGE_QUANTILE = 0.99


def _block_means(luma: np.ndarray, side: int) -> np.ndarray:
    n, h, w = luma.shape
    out = np.empty((n, side * side), dtype=np.float32)
    if n == 0:
        return out
    if h % side == 0 and w % side == 0:  # whole blocks: the stacked batch is resized at once, block by block
        return cv2.resize(luma.reshape(n * h, w), (side, n * side), interpolation=cv2.INTER_AREA).reshape(n, -1)
    for i, g in enumerate(luma):  # OpenCV's area mean is the block mean, several times faster than numpy's
        out[i] = cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA).ravel()
    return out


def layout_descriptor(x: np.ndarray | Planes, side: int = LAYOUT_SIDE) -> np.ndarray:
    """``(n, side * side)`` float32 block means of luma (0-255): the picture's layout at ``side`` x ``side``.

    Coarse enough that resizing, re-encoding and small edits barely move it, fine
    enough that different pictures differ."""
    p = as_planes(x)
    return p.layout if side == LAYOUT_SIDE else _block_means(p.luma, side)


#: Gain of the brightened layout (:func:`brightened_layout`): a copy brightened by 1.2-1.4 is clipped
#: about where this one is.
BRIGHT_GAIN = 1.3


def brightened_layout(x: np.ndarray | Planes, gain: float = BRIGHT_GAIN) -> np.ndarray:
    """The layout (:func:`layout_descriptor`) the image would have if its levels were multiplied by ``gain``
    and clipped at white: where a brightened copy's highlights are clipped, its layout no longer follows
    the original's, but it does follow this one."""
    p = as_planes(x)
    return _block_means(np.minimum(p.luma * np.float32(gain), np.float32(255.0)), LAYOUT_SIDE)


def _edge_levels(gray: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Along the rows of ``gray`` (``(n, h, w)`` uint8; pass it transposed for the columns): per pixel the
    rise across its window (``height``) and its steepest one-pixel step / rise in 256 levels (``levels``,
    0 where the rise is 0). Every step is along a row, so the whole batch is filtered as one image."""
    n, h, w = gray.shape
    rows = gray.reshape(n * h, w)
    step = cv2.copyMakeBorder(cv2.absdiff(rows[:, 1:], rows[:, :-1]), 0, 0, 0, 1, cv2.BORDER_CONSTANT, value=0)
    # The step between pixels j and j + 1 sits at j: the steps of a window and the pixels of the rise they
    # make up must be the same span, or one step may look like a whole edge.
    span = np.ones((1, window + 1), np.uint8)
    anchor = (window // 2, 0)
    height = cv2.subtract(cv2.dilate(rows, span, anchor=anchor), cv2.erode(rows, span, anchor=anchor))
    steepest = cv2.dilate(step, np.ones((1, window), np.uint8))
    levels = cv2.divide(steepest, height, scale=_LEVELS - 1)  # 0 where height is 0
    return height.reshape(n, h, w), levels.reshape(n, h, w)


def _edge_counts(height: np.ndarray, levels: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """``(n, 256)`` histograms of ``levels`` where ``height`` is at least each image's floor."""
    n = len(height)
    rows = height.reshape(n, -1)
    floor = np.ascontiguousarray(np.broadcast_to(floors.astype(np.uint8)[:, None], rows.shape))
    return counts_by_image(levels, cv2.compare(rows, floor, cv2.CMP_LT))


def upscale_factors(width: np.ndarray, height: np.ndarray, side: int) -> np.ndarray:
    """``(n, 2)`` whole factors by which a ``side`` x ``side`` thumbnail enlarged each image across and down
    (1 for images at least ``side`` pixels on that axis)."""
    dims = np.stack([np.asarray(width), np.asarray(height)], axis=1).astype(np.float64)
    return np.clip(np.rint(side / np.maximum(dims, 1)), 1, side).astype(np.intp)


def edge_sharpness(x: np.ndarray | Planes, upscale: np.ndarray | None = None, window: int = EDGE_WINDOW,
                   quantile: float = EDGE_QUANTILE) -> np.ndarray:
    """How sharp an image's edges are, in [0, 1]: 1 for one-pixel steps; a step blurred by a Gaussian of sigma
    0.5, 1, 2, 3 and 4 thumbnail pixels scores 0.88, 0.58, 0.42, 0.33 and 0.25.

    Measured only where there are edges: at each pixel whose luma rises across a ``window``-pixel span by at
    least ``EDGE_FRACTION`` of the image's own contrast, the largest one-pixel step of that rise over the
    rise; the score is the ``quantile`` of that ratio, so the sharpest edges decide (a sharp subject on a
    soft background is sharp). The ratio does not depend on brightness or contrast, and flat regions
    (backgrounds, skies, page margins) take no part, so a sharp drawing on white is as sharp as a photo.
    An image with content but no such edge (all of its changes gradual) is judged on every rise of at least
    ``EDGE_MIN_STEP`` levels instead; one without even those (flat) scores 1.0: nothing in it looks blurred.
    Every other row and every other column are measured, each along itself.

    ``upscale`` (``(n, 2)``, see :func:`upscale_factors`) says how much the thumbnail enlarged a small
    image across and down: its window then spans ``window`` of the image's own pixels, so a small image is
    judged by its own pixels (area resampling enlarges by repeating pixels, keeping each step whole).
    """
    p = as_planes(x)
    gray = p.gray
    n = len(p)
    layout = layout_descriptor(p)
    contrast_range = layout.max(axis=1) - layout.min(axis=1) if n and layout.size else np.zeros(n, np.float32)
    relative = np.clip(np.ceil(np.maximum(EDGE_FRACTION * contrast_range, EDGE_MIN_STEP)), 0, 255)
    least = np.full_like(relative, EDGE_MIN_STEP)
    factors = np.ones((n, 2), dtype=np.intp) if upscale is None else np.asarray(upscale, dtype=np.intp)
    strong = np.zeros((n, _LEVELS))  # edges by the relative floor
    weak = np.zeros((n, _LEVELS))  # every rise of EDGE_MIN_STEP, for the images the first finds too few in
    planes = []
    if n and (factors == factors[0]).all():  # the usual case; np.unique over rows costs more than the rest
        kinds, which = factors[:1], np.zeros(n, dtype=np.intp)
    else:
        kinds, which = np.unique(factors, axis=0, return_inverse=True)
    for k, (fx, fy) in enumerate(kinds.tolist()):  # one pass per enlargement: nearly always just one
        members = np.flatnonzero(which.ravel() == k)
        g = gray if members.size == n else gray[members]
        for view, factor in ((g[:, ::2, :], fx), (g[:, :, ::2].transpose(0, 2, 1), fy)):
            height, levels = _edge_levels(np.ascontiguousarray(view), window * factor)
            strong[members] += _edge_counts(height, levels, relative[members])
            planes.append((members, height, levels))
    totals = strong.sum(axis=1)
    use_relative = totals >= EDGE_MIN_PIXELS
    if not use_relative.all():
        for members, height, levels in planes:
            few = np.flatnonzero(~use_relative[members])
            if few.size:
                weak[members[few]] += _edge_counts(height[few], levels[few], least[members[few]])
    chosen = np.where(use_relative[:, None], strong, weak)
    total = chosen.sum(axis=1)
    above = np.cumsum(chosen[:, ::-1], axis=1)  # edge pixels at or above each level, from the top
    wanted = np.maximum(np.ceil((1.0 - quantile) * total), 1)[:, None]
    top = _LEVELS - 1 - np.argmax(above >= wanted, axis=1)
    return np.where(total >= EDGE_MIN_PIXELS, top / (_LEVELS - 1), 1.0)


def row_percentiles(x: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """``np.percentile(x, q, axis=1)`` (its default linear method), bit for bit, for a 2-D float array.

    Each row is sorted once (numpy's vectorised sort of a 16,384-value row is several times faster than
    the selection ``np.percentile`` makes for each of several percentiles), and the values at numpy's
    own ranks are interpolated as numpy does."""
    x = np.asarray(x)
    n, m = x.shape
    if m == 0:
        raise ValueError("percentiles of empty rows")
    fractions = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    virtual = (m - 1) * fractions
    previous = np.floor(virtual)
    gamma = virtual - previous
    previous = np.where(virtual >= m - 1, m - 1, np.maximum(previous, 0)).astype(np.intp)
    following = np.where(virtual >= m - 1, m - 1, np.where(virtual < 0, 0, previous + 1)).astype(np.intp)
    ordered = np.sort(x, axis=1)
    out = np.empty((len(fractions), n), dtype=np.float64)
    for k in range(len(fractions)):
        out[k] = _lerp(ordered[:, previous[k]], ordered[:, following[k]], gamma[k])
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: np.float64) -> np.ndarray:
    """numpy's quantile interpolation: the difference in the values' own type, then from the nearer end in
    float64 (``t`` is numpy's float64 fraction)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def histogram(values: np.ndarray, bins: int, value_range: tuple[float, float] | None = None) -> dict:
    """A histogram ready to draw as a curve: bin edges, centres and counts."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"edges": [], "centers": [], "counts": []}
    if value_range is None:
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + 1.0
        value_range = (lo, hi)
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    centers = (edges[:-1] + edges[1:]) / 2.0
    return {
        "edges": [round(float(e), 6) for e in edges],
        "centers": [round(float(c), 6) for c in centers],
        "counts": [int(c) for c in counts],
    }


def describe(values: np.ndarray) -> dict:
    """Summary statistics of one feature column."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"count": 0}
    p05, p50, p95 = np.percentile(values, [5, 50, 95])
    return {
        "count": int(values.size),
        "mean": round(float(values.mean()), 6),
        "std": round(float(values.std()), 6),
        "min": round(float(values.min()), 6),
        "p05": round(float(p05), 6),
        "median": round(float(p50), 6),
        "p95": round(float(p95), 6),
        "max": round(float(values.max()), 6),
    }


#: Side of the gray views a near-duplicate candidate pair is compared on, and the cells of the local check.
DETAIL_SIDE = 64
DETAIL_CELLS = 8
# Levels of one image that predict the other (see :func:`local_difference`): few enough that every level
# holds many pixels, so a level map cannot fit a different drawing pixel by pixel.
_TONE_BINS = 32


def local_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair of gray views ``(m, s, s)`` (levels 0-255), how much the two pictures differ in their most
    different region, whatever the tone change between them; 0 for the same picture.

    Each view's levels predict the other's: a pixel is predicted by the mean, over the
    pixels of its level (32 bins over the view's own range), of the other view. Any change of tone that maps levels
    to levels (brightening, darkening, contrast, clipped highlights, a gray conversion of
    the luma) is then predicted exactly, while a line, letter or shape that only one
    picture has is not. The squared error, in units of the predicted view's variance, is
    averaged over ``DETAIL_CELLS`` x ``DETAIL_CELLS`` cells, and the worst cell counts: a
    difference confined to one corner (a door in an igloo, a letter on a die) counts in
    full instead of being diluted over the picture.

    The result is the worse direction's error, except that a direction predicted at least
    twice as well as the result lets the other be up to four times worse: a copy whose
    highlights were clipped is a tone map of the original, but not the other way round
    (the clipped levels cannot be told apart), while a detail only one picture has leaves
    a large error at least one way.
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"views must be two (m, s, s) stacks of one shape, got {a.shape} and {b.shape}")
    one, other = _predicted_error(a, b), _predicted_error(b, a)
    worse, better = np.maximum(one, other), np.minimum(one, other)
    return np.minimum(worse, np.maximum(2.0 * better, worse / 4.0))


def _predicted_error(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    m = len(target)
    if m == 0:
        return np.zeros(0)
    # Levels are binned over the source's own range: a faint drawing (a few levels deep) keeps its detail.
    low = source.min(axis=(1, 2), keepdims=True)
    span = np.maximum(source.max(axis=(1, 2), keepdims=True) - low, 1.0)
    bins = np.minimum(((source - low) * (_TONE_BINS / span)).astype(np.intp), _TONE_BINS - 1)
    bins += (np.arange(m, dtype=np.intp) * _TONE_BINS)[:, None, None]
    flat = bins.ravel()
    sums = np.bincount(flat, weights=target.ravel(), minlength=m * _TONE_BINS)
    counts = np.bincount(flat, minlength=m * _TONE_BINS)
    predicted = (sums / np.maximum(counts, 1))[flat].reshape(target.shape)
    spread = np.maximum(target.reshape(m, -1).std(axis=1), 1.0)[:, None, None]  # flat views: in levels
    error = (((target - predicted) / spread) ** 2).astype(np.float32)
    cells = np.empty(m)
    for k in range(m):  # OpenCV's area mean per view
        cells[k] = cv2.resize(error[k], (DETAIL_CELLS, DETAIL_CELLS), interpolation=cv2.INTER_AREA).max()
    return cells


def window_weights(out: int, size: int, scale: float, offset: float) -> np.ndarray:
    """``(out, size)`` weights taking the mean of ``out`` equal cells of the window ``[offset, offset + scale]``
    (unit coordinates) of a row of ``size`` samples, each held constant over its width: the area resampling
    of a crop."""
    edges = offset + scale * np.arange(out + 1) / out
    blocks = np.arange(size + 1) / size
    overlap = np.clip(np.minimum(edges[1:, None], blocks[None, 1:]) - np.maximum(edges[:-1, None], blocks[None, :-1]),
                      0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def cut_windows(gray: np.ndarray, windows: list[tuple[float, float, float, float]], side: int) -> np.ndarray:
    """``(len(windows), side, side)`` float32: each unit rectangle of ``gray`` (uint8, any size) cut at whole
    pixels and area-resampled to ``side``, as a copy cut from the picture and viewed at ``side`` would be."""
    h, w = gray.shape
    out = np.empty((len(windows), side, side), dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(windows):
        c0, r0 = int(round(x0 * w)), int(round(y0 * h))
        c1, r1 = max(int(round(x1 * w)), c0 + 1), max(int(round(y1 * h)), r0 + 1)
        out[k] = cv2.resize(gray[r0:r1, c0:c1], (side, side), interpolation=cv2.INTER_AREA)
    return out


#: Smallest share of an axis a crop keeps, for :func:`match_crop`'s scales (the crop search's windows keep
#: 0.9 and more; the slack covers a copy a little smaller than its nearest hypothesis).
MATCH_MIN_SCALE = 0.86
#: :func:`match_crop` matches every scale with the copy squared to this side, then the best scales again on
#: the picture as decoded (its longest side brought down to :data:`MATCH_FINE_MAX` at most), near the coarse
#: offset.
MATCH_COARSE_SIDE = 64
MATCH_FINE_MAX = 512
#: Scales refined on the picture as decoded, at most.
MATCH_SCALES_KEPT = 2
#: Coarse normalised cross-correlation a scale must reach to be refined: on the benchmark, 95% of the crop
#: search's candidates of one picture reach 0.96 (its crops 1.0), 72% of those of different pictures stay
#: under 0.9 and cost no refinement.
MATCH_MIN_CORRELATION = 0.9


def _resized(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = width <= gray.shape[1] and height <= gray.shape[0]
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def match_scales(picture_size: tuple[float, float], copy_size: tuple[float, float],
                 near: float | None = None, within: float = 0.03) -> list[tuple[float, float]]:
    """Axis scales ``(kept across, kept down)`` a crop of a picture of ``picture_size`` (width, height) may
    have when its copy is ``copy_size``: the copy's aspect ratio fixes the ratio of the two (a crop, resized
    or not, keeps its shape), so one scale is searched, 0.86 to 1 in steps of 0.01; first, the exact pair
    when the copy is a crop kept at the picture's resolution (its sizes are then the window's, in the
    picture's pixels). With ``near`` (the share of the picture's height a search found the crop to keep),
    only the scales within ``within`` of it."""
    (pw, ph), (cw, ch) = picture_size, copy_size
    if min(pw, ph, cw, ch) <= 0:
        return []
    ratio = (cw / ch) / (pw / ph)  # kept across / kept down
    out = []
    # Not when the copy is the picture's own size: a "crop" that keeps all of it is the whole picture, which the
    # whole-picture check judges (and the exact scale is refined whatever its coarse match: on a folder of
    # same-size photos every candidate pair was refined to the full picture, 26 ms a pair).
    if MATCH_MIN_SCALE <= cw / pw <= 1.0 and MATCH_MIN_SCALE <= ch / ph <= 1.0 and (cw < pw or ch < ph):
        out.append((cw / pw, ch / ph))
    for down in np.arange(MATCH_MIN_SCALE, 1.0 + 1e-9, 0.01):
        across = down * ratio
        if near is not None and abs(down - near) > within + 1e-9:
            continue
        if MATCH_MIN_SCALE - 1e-9 <= across <= 1.0 + 1e-9:
            out.append((min(float(across), 1.0), float(down)))
    return out


def match_crop(picture: np.ndarray, copy: np.ndarray, scales: list[tuple[float, float]],
               kept: int = MATCH_SCALES_KEPT, min_correlation: float = MATCH_MIN_CORRELATION,
               ) -> list[tuple[float, float, float, float]]:
    """The windows of ``picture`` (gray, uint8, as decoded: its own aspect ratio) that ``copy`` (gray, as
    decoded) was most likely cut from, as unit rectangles ``(x0, y0, x1, y1)``, one for each of the ``kept``
    best of ``scales`` (:func:`match_scales`).

    For each scale, the picture is resized so that a window of that scale is :data:`MATCH_COARSE_SIDE`
    square, and the copy, squared to that side, is matched over every offset by normalised cross-correlation
    (OpenCV's ``matchTemplate``: a change of brightness or contrast leaves it unchanged). The best scales'
    offsets (those that reach ``min_correlation``) are then refined coarse to fine, each level twice as fine
    as the last, within two pixels of the last level's match, up to the picture as decoded (its longest side at most :data:`MATCH_FINE_MAX`), the
    copy resized to the window's size at each level: the window lands on the picture's own pixels (a crop
    kept at the picture's resolution falls on them exactly), where a line moved by half a pixel of the views
    the check compares is a difference to it."""
    if not scales or min(picture.shape) < 2 or min(copy.shape) < 2:
        return []
    coarse = _resized(copy, MATCH_COARSE_SIDE, MATCH_COARSE_SIDE).astype(np.float32)
    found = []
    for across, down in scales:
        width = max(MATCH_COARSE_SIDE, int(round(MATCH_COARSE_SIDE / across)))
        height = max(MATCH_COARSE_SIDE, int(round(MATCH_COARSE_SIDE / down)))
        scores = cv2.matchTemplate(_resized(picture, width, height).astype(np.float32), coarse, cv2.TM_CCOEFF_NORMED)
        _, best, _, (x, y) = cv2.minMaxLoc(scores)
        found.append((best, across, down, (x / width, y / height), (1.0 / width, 1.0 / height)))
    found.sort(key=lambda f: -f[0])
    shrink = min(1.0, MATCH_FINE_MAX / max(picture.shape))
    final = (max(2, int(round(picture.shape[1] * shrink))), max(2, int(round(picture.shape[0] * shrink))))
    pyramid: dict[tuple[int, int], np.ndarray] = {}
    out = []
    for score, across, down, (ux, uy), (px, py) in found[:kept]:
        if score < min_correlation:
            break
        # Levels from the first twice as fine as the coarse match to the picture as decoded.
        levels, size = [], final
        while size[0] * across > 2 * MATCH_COARSE_SIDE and size[1] * down > 2 * MATCH_COARSE_SIDE:
            levels.append(size)
            size = (max(2, size[0] // 2), max(2, size[1] // 2))
        levels.append(size)
        window = None
        for width, height in reversed(levels):
            if (width, height) not in pyramid:
                pyramid[(width, height)] = _resized(picture, width, height).astype(np.float32)
            large = pyramid[(width, height)]
            tw, th = min(width, max(2, int(round(across * width)))), min(height, max(2, int(round(down * height))))
            mx, my = int(np.ceil(2 * px * width)) + 1, int(np.ceil(2 * py * height)) + 1
            x0, y0 = int(round(ux * width)), int(round(uy * height))
            left, top = max(0, x0 - mx), max(0, y0 - my)
            region = large[top:min(height, y0 + my + th), left:min(width, x0 + mx + tw)]
            if region.shape[0] < th or region.shape[1] < tw:
                break
            _, _, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(region, _resized(copy, tw, th).astype(np.float32),
                                                              cv2.TM_CCOEFF_NORMED))
            ux, uy, px, py = (left + x) / width, (top + y) / height, 1.0 / width, 1.0 / height
            window = (ux, uy, (left + x + tw) / width, (top + y + th) / height)
        if window is not None:
            out.append(window)
    return out
