"""Vectorised per-image numerics over a batch of thumbnails ``(n, h, w, 3)`` in [0, 1]."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights for grayscale conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# Perceived-brightness weights (the HSP model, as cleanvision uses).
_HSP = np.array([0.241, 0.691, 0.068], dtype=np.float32)


def grayscale(pixels: np.ndarray) -> np.ndarray:
    """``(n, h, w, 3)`` -> ``(n, h, w)`` luma in [0, 1]."""
    return pixels @ _LUMA


def brightness(pixels: np.ndarray) -> np.ndarray:
    """Mean perceived brightness per image, in [0, 1] (0 black, 1 white)."""
    per_pixel = np.sqrt(np.clip((pixels * pixels) @ _HSP, 0.0, None))
    return per_pixel.mean(axis=(1, 2))


def contrast(pixels: np.ndarray) -> np.ndarray:
    """Standard deviation of luma per image, in [0, 0.5]."""
    return grayscale(pixels).std(axis=(1, 2))


def channel_extremes(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel max and min over the three channels. Pairwise maximum of the channel planes is several
    times faster than reducing over the last (contiguous, length-3) axis."""
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)


def saturation(pixels: np.ndarray, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Mean HSV saturation per image, in [0, 1] (0 for gray pixels)."""
    hi, lo = extremes if extremes is not None else channel_extremes(pixels)
    sat = (hi - lo) / np.maximum(hi, 1e-12)
    return sat.mean(axis=(1, 2))


def colourfulness(pixels: np.ndarray) -> np.ndarray:
    """Hasler and Suesstrunk's colourfulness metric (on a 0-255 scale): ~0 gray, >100 very colourful."""
    r, g, b = (pixels[..., c] * 255.0 for c in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    std = np.sqrt(rg.var(axis=(1, 2)) + yb.var(axis=(1, 2)))
    mean = np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    return std + 0.3 * mean


def entropy(pixels: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the 768-bin histogram of the three 8-bit channels, as Pillow's
    ``Image.entropy()`` computes it: low values mean little information (flat or nearly flat images)."""
    n = pixels.shape[0]
    offsets = np.arange(3, dtype=np.uint16) * 256
    counts = np.empty((n, 768), dtype=np.float64)
    for i in range(n):  # one image at a time: small uint16 temporaries instead of batch-sized int64 ones
        q = np.rint(pixels[i] * 255.0).astype(np.uint16) + offsets
        counts[i] = np.bincount(q.ravel(), minlength=768)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(p), 0.0)
    return -terms.sum(axis=1)


def is_grayscale(pixels: np.ndarray, tolerance: float = 2.0 / 255.0,
                 extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """True where every pixel's channels agree within ``tolerance`` (gray content, whatever the mode)."""
    hi, lo = extremes if extremes is not None else channel_extremes(pixels)
    spread = hi - lo
    return spread.reshape(spread.shape[0], -1).max(axis=1) <= tolerance


def laplacian_variance(pixels: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian of luma (on a 0-255 scale) per image.

    A sharp image has strong second derivatives; a blurred one does not, so a
    low value means blurry. Computed on the fixed-size thumbnail so that scores
    are comparable across image sizes.
    """
    g = grayscale(pixels) * 255.0
    lap = (
        g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4.0 * g[:, 1:-1, 1:-1]
    )
    return lap.reshape(lap.shape[0], -1).var(axis=1)


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
