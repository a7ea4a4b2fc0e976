"""Seeded image augmentations that keep target boxes consistent with the pixels.

Every transform has the same shape::

    transform(image, boxes, rng, **params) -> Augmented(image, boxes, kept)

``image`` is an RGB :class:`PIL.Image.Image`; ``boxes`` is a float64 ``(k, 4)``
array of ``[x, y, w, h]`` in pixels, top-left origin, in continuous coordinates
(pixel ``i`` covers ``[i, i + 1)``, the convention Pillow's geometry uses), so a
box and the pixels under it move through exactly the same mapping.

After a transform, boxes are clipped to the new image. A box is dropped when its
clipped width or height is zero or when less than ``min_visible`` of it is still
inside the image (the fraction is measured after the geometric mapping and
before clipping, so resizing alone never drops a box). ``kept`` is a bool mask
over the *input* boxes and ``boxes`` holds only the kept ones, in input order,
so labels follow with :func:`select_labels`.

Randomness comes only from the ``numpy.random.Generator`` passed in; nothing
reads a global RNG, the clock or ``hash()``. With the same numpy and Pillow
versions, the same input and seed give byte-identical images in any process.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageEnhance, ImageFilter

#: Transform names (the keys of :data:`TRANSFORMS` and of ``steps``).
HFLIP = "hflip"
VFLIP = "vflip"
ROTATE = "rotate"
RANDOM_RESIZED_CROP = "random_resized_crop"
RESIZE = "resize"
COLOR_JITTER = "color_jitter"
GAUSSIAN_NOISE = "gaussian_noise"
GAUSSIAN_BLUR = "gaussian_blur"

#: Annotation keys, as ``operators.base.Item.boxes`` holds them.
BBOX = "bbox"
LABEL = "label"

DEFAULT_MIN_VISIBLE = 0.25
BOX_SIZE = 4  # x, y, w, h
RGB = "RGB"
_RGB_CHANNELS = 3
_UINT8_MAX = 255
# Bilinear sampling is exact at pixel centres, so quarter turns and identity
# rotations reproduce the input pixels instead of smearing them.
_RESAMPLE = Image.Resampling.BILINEAR
# torchvision's RandomResizedCrop budget before falling back to a centre crop.
_CROP_ATTEMPTS = 10
# Rounding cos/sin (as Pillow does) makes quarter turns exact: cos(90°) is 0, not 6e-17.
_TRIG_DIGITS = 15
# Slack when turning a rotated extent into an integer canvas size.
_SIZE_EPS = 1e-6
# Parameters every transform takes that are not step params.
_CALL_ARGS = ("image", "boxes", "rng", "min_visible")
# Image used to check step params before any real work.
_PROBE_SIZE = (8, 8)


@dataclass(frozen=True, eq=False)
class Augmented:
    """One transform's output: the new image, the kept boxes and which input boxes they are.

    ``boxes`` has ``kept.sum()`` rows; both arrays are read-only so a result can be
    shared between steps and callers without defensive copies.
    """

    image: Image.Image
    boxes: np.ndarray
    kept: np.ndarray


class Step(NamedTuple):
    """One entry of a :func:`compose` pipeline; a plain ``(name, probability, params)`` tuple works too."""

    name: str
    probability: float
    params: Mapping[str, object]


Transform = Callable[..., Augmented]


# --- boxes and labels -------------------------------------------------------


def as_boxes(boxes: ArrayLike) -> np.ndarray:
    """Boxes as a float64 ``(k, 4)`` array; an empty input is ``(0, 4)``.

    Rejecting malformed boxes here keeps NaNs and negative sizes from turning into
    silently dropped targets later.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, BOX_SIZE), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != BOX_SIZE:
        raise ValueError(f"boxes must have shape (k, {BOX_SIZE}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("boxes must be finite")
    if np.any(arr[:, 2:] < 0):
        raise ValueError("box width and height must be non-negative")
    return arr


def select_labels(labels: Sequence[str], kept: np.ndarray) -> list[str]:
    """The labels of the kept boxes, in order (``kept`` from :class:`Augmented`)."""
    if len(labels) != len(kept):
        raise ValueError(f"{len(labels)} labels for a mask over {len(kept)} boxes")
    return [label for label, keep in zip(labels, kept, strict=True) if keep]


def join_annotations(boxes: np.ndarray, labels: Sequence[str]) -> list[dict[str, object]]:
    """The inverse of :func:`operators.annotations.parse_boxes`, with plain floats so the result is JSON-ready."""
    boxes = as_boxes(boxes)
    if len(labels) != len(boxes):
        raise ValueError(f"{len(labels)} labels for {len(boxes)} boxes")
    return [{BBOX: [float(v) for v in box], LABEL: label} for box, label in zip(boxes, labels, strict=True)]


def _finish(image: Image.Image, mapped: np.ndarray, min_visible: float) -> Augmented:
    """Clip mapped (unclipped) boxes to ``image`` and drop the ones that are mostly gone."""
    width, height = image.size
    x0 = np.clip(mapped[:, 0], 0.0, width)
    y0 = np.clip(mapped[:, 1], 0.0, height)
    x1 = np.clip(mapped[:, 0] + mapped[:, 2], 0.0, width)
    y1 = np.clip(mapped[:, 1] + mapped[:, 3], 0.0, height)
    clipped = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    area = mapped[:, 2] * mapped[:, 3]
    visible = clipped[:, 2] * clipped[:, 3]
    fraction = np.divide(visible, area, out=np.zeros_like(area), where=area > 0)
    kept = (clipped[:, 2] > 0) & (clipped[:, 3] > 0) & (fraction >= min_visible)
    out = np.ascontiguousarray(clipped[kept])
    out.setflags(write=False)
    kept.setflags(write=False)
    return Augmented(image, out, kept)


def _check_inputs(image: Image.Image, boxes: np.ndarray, min_visible: float) -> np.ndarray:
    if image.mode != RGB:
        raise ValueError(f"expected an {RGB} image, got mode {image.mode!r}")
    if not 0.0 <= min_visible <= 1.0:
        raise ValueError(f"min_visible must be in [0, 1], got {min_visible}")
    return as_boxes(boxes)


def _range(name: str, value: Sequence[float], low: float, high: float = math.inf) -> tuple[float, float]:
    """A ``(lo, hi)`` pair inside ``[low, high]`` with ``lo <= hi``."""
    if len(value) != 2:
        raise ValueError(f"{name} must be a (lo, hi) pair, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or not low <= lo <= hi <= high:
        raise ValueError(f"{name} must satisfy {low} <= lo <= hi <= {high}, got {value!r}")
    return lo, hi


def _size(name: str, value: Sequence[int]) -> tuple[int, int]:
    if len(value) != 2 or any(isinstance(v, bool) or int(v) != v or v < 1 for v in value):
        raise ValueError(f"{name} must be a (width, height) pair of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


# --- geometric transforms ---------------------------------------------------


def hflip(
    image: Image.Image, boxes: np.ndarray, rng: np.random.Generator, *, min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Mirror left to right: ``x' = W - x - w``. Draws nothing from ``rng``."""
    boxes = _check_inputs(image, boxes, min_visible)
    mapped = boxes.copy()
    mapped[:, 0] = image.width - boxes[:, 0] - boxes[:, 2]
    return _finish(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mapped, min_visible)


def vflip(
    image: Image.Image, boxes: np.ndarray, rng: np.random.Generator, *, min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Mirror top to bottom: ``y' = H - y - h``. Draws nothing from ``rng``."""
    boxes = _check_inputs(image, boxes, min_visible)
    mapped = boxes.copy()
    mapped[:, 1] = image.height - boxes[:, 1] - boxes[:, 3]
    return _finish(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM), mapped, min_visible)


def _rotation(width: int, height: int, degrees: float, expand: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """The forward affine (input -> output, 2x3) of a counter-clockwise turn about the centre, and the output size."""
    theta = math.radians(degrees)
    cos, sin = round(math.cos(theta), _TRIG_DIGITS), round(math.sin(theta), _TRIG_DIGITS)
    # y points down, so a counter-clockwise turn on screen is this matrix.
    linear = np.array([[cos, sin], [-sin, cos]])
    out_w, out_h = width, height
    if expand:
        corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
        half = np.ptp(corners @ linear.T, axis=0) / 2.0
        # Pillow's rounding of the turned extent, so the canvas matches Image.rotate(expand=True).
        out_w, out_h = (max(1, math.ceil(c + h - _SIZE_EPS) - math.floor(c - h + _SIZE_EPS))
                        for c, h in zip((width / 2.0, height / 2.0), half, strict=True))
    centre_in = np.array([width / 2.0, height / 2.0])
    centre_out = np.array([out_w / 2.0, out_h / 2.0])
    offset = centre_out - linear @ centre_in
    return np.hstack([linear, offset[:, None]]), (out_w, out_h)


def _map_corners(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds of each box's four corners under ``affine``."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    corners = np.stack([np.stack(c, axis=-1) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=1)
    mapped = corners @ affine[:, :2].T + affine[:, 2]  # (k, 4 corners, 2)
    lo, hi = mapped.min(axis=1), mapped.max(axis=1)
    return np.hstack([lo, hi - lo])


def rotate(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    degrees: Sequence[float] = (-10.0, 10.0),
    expand: bool = False,
    fill: Sequence[int] = (0, 0, 0),
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Turn counter-clockwise by an angle drawn uniformly from ``degrees`` (one draw).

    Pixels and boxes go through the same affine: each box becomes the axis-aligned
    bounds of its four turned corners. ``expand`` grows the canvas to hold the whole
    turned image; uncovered pixels take ``fill``.
    """
    boxes = _check_inputs(image, boxes, min_visible)
    lo, hi = _range("degrees", degrees, -math.inf)
    if len(fill) != _RGB_CHANNELS or any(not 0 <= int(c) <= _UINT8_MAX for c in fill):
        raise ValueError(f"fill must be an RGB triple of 0..{_UINT8_MAX}, got {fill!r}")
    angle = float(rng.uniform(lo, hi))
    affine, size = _rotation(image.width, image.height, angle, bool(expand))
    # Pillow wants the inverse mapping: output pixel -> input position.
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))[:2].ravel()
    out = image.transform(size, Image.Transform.AFFINE, tuple(float(v) for v in inverse), _RESAMPLE,
                          fillcolor=tuple(int(c) for c in fill))
    return _finish(out, _map_corners(boxes, affine), min_visible)


def crop_window(
    width: int, height: int, rng: np.random.Generator, *, scale: Sequence[float] = (0.5, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A random ``(left, top, w, h)`` window covering ``scale`` of the area at aspect ``ratio``.

    torchvision's RandomResizedCrop sampling (aspect drawn log-uniformly, ten tries,
    then a centre crop), so its tuned defaults carry over.
    """
    scale_lo, scale_hi = _range("scale", scale, 0.0, 1.0)
    if scale_hi == 0.0:
        raise ValueError(f"scale must allow a non-empty crop, got {scale!r}")
    ratio_lo, ratio_hi = _range("ratio", ratio, 0.0)
    if ratio_lo == 0.0:
        raise ValueError(f"ratio must be positive, got {ratio!r}")
    area = width * height
    log_lo, log_hi = math.log(ratio_lo), math.log(ratio_hi)
    for _ in range(_CROP_ATTEMPTS):
        target = area * rng.uniform(scale_lo, scale_hi)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    aspect = width / height
    if aspect < ratio_lo:
        w, h = width, max(1, round(width / ratio_lo))
    elif aspect > ratio_hi:
        w, h = max(1, round(height * ratio_hi)), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def crop(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    window: Sequence[int],
    size: Sequence[int] | None = None,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Cut ``window`` = ``(left, top, w, h)`` out of the image, then resize to ``size`` if given.

    The deterministic half of :func:`random_resized_crop`; draws nothing from ``rng``.
    """
    boxes = _check_inputs(image, boxes, min_visible)
    if len(window) != 4:
        raise ValueError(f"window must be (left, top, w, h), got {window!r}")
    left, top = int(window[0]), int(window[1])
    w, h = _size("window size", window[2:])
    if left < 0 or top < 0 or left + w > image.width or top + h > image.height:
        raise ValueError(f"window {tuple(window)} is not inside a {image.width}x{image.height} image")
    out = image.crop((left, top, left + w, top + h))
    mapped = boxes - np.array([left, top, 0.0, 0.0])
    if size is not None:
        out_w, out_h = _size("size", size)
        out = out.resize((out_w, out_h), _RESAMPLE)
        mapped = mapped * np.array([out_w / w, out_h / h, out_w / w, out_h / h])
    return _finish(out, mapped, min_visible)


def random_resized_crop(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    scale: Sequence[float] = (0.5, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    size: Sequence[int] | None = None,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Crop a random window (:func:`crop_window`) and resize it to ``size`` (``None`` keeps the crop's size).

    Boxes shift and scale with the window; a box mostly outside it is dropped.
    """
    _check_inputs(image, boxes, min_visible)
    if size is not None:
        _size("size", size)
    window = crop_window(image.width, image.height, rng, scale=scale, ratio=ratio)
    return crop(image, boxes, rng, window=window, size=size, min_visible=min_visible)


def resize(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    size: Sequence[int] = (256, 256),
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Resize to ``size`` = ``(w, h)``; boxes scale by the same factors. Draws nothing from ``rng``."""
    boxes = _check_inputs(image, boxes, min_visible)
    out_w, out_h = _size("size", size)
    factors = np.array([out_w / image.width, out_h / image.height] * 2)
    return _finish(image.resize((out_w, out_h), _RESAMPLE), boxes * factors, min_visible)


# --- photometric transforms (boxes unchanged) -------------------------------


def color_jitter(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Scale brightness, contrast and saturation, in that order, by factors drawn from ``[1 - x, 1 + x]``.

    Always three draws, even for ``x = 0``, so a step's parameters never shift the
    random stream of the steps after it. Factors are floored at 0 (Pillow's black,
    grey and greyscale end points).
    """
    boxes = _check_inputs(image, boxes, min_visible)
    enhancers = ((brightness, ImageEnhance.Brightness), (contrast, ImageEnhance.Contrast),
                 (saturation, ImageEnhance.Color))
    if any(not (math.isfinite(strength) and strength >= 0) for strength, _ in enhancers):
        raise ValueError(f"jitter strengths must be finite and non-negative, got {brightness, contrast, saturation}")
    out = image
    for strength, enhancer in enhancers:
        factor = float(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength))
        out = enhancer(out).enhance(factor)
    return _finish(out, boxes, min_visible)


def gaussian_noise(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma: float = 0.03,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Add per-pixel, per-channel Gaussian noise; ``sigma`` is in [0, 1] intensity units.

    The result is rounded and clipped to uint8, so ``sigma = 0`` is an exact copy.
    """
    boxes = _check_inputs(image, boxes, min_visible)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be finite and non-negative, got {sigma}")
    pixels = np.asarray(image, dtype=np.float64)
    noisy = pixels + rng.normal(0.0, sigma * _UINT8_MAX, size=pixels.shape)
    out = np.clip(np.rint(noisy), 0, _UINT8_MAX).astype(np.uint8)
    return _finish(Image.fromarray(out, RGB), boxes, min_visible)


def gaussian_blur(
    image: Image.Image,
    boxes: np.ndarray,
    rng: np.random.Generator,
    *,
    radius: Sequence[float] = (0.1, 2.0),
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Gaussian blur with a radius (pixels) drawn uniformly from ``radius`` (one draw)."""
    boxes = _check_inputs(image, boxes, min_visible)
    lo, hi = _range("radius", radius, 0.0)
    out = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(lo, hi))))
    return _finish(out, boxes, min_visible)


#: Name -> transform, for :func:`compose` steps. Read-only: add transforms here, in code review.
TRANSFORMS: Mapping[str, Transform] = MappingProxyType({
    HFLIP: hflip,
    VFLIP: vflip,
    ROTATE: rotate,
    RANDOM_RESIZED_CROP: random_resized_crop,
    RESIZE: resize,
    COLOR_JITTER: color_jitter,
    GAUSSIAN_NOISE: gaussian_noise,
    GAUSSIAN_BLUR: gaussian_blur,
})


# --- pipelines and seeds ----------------------------------------------------


def step_params(name: str) -> tuple[str, ...]:
    """The params a step of transform ``name`` accepts (what a params model should mirror)."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; valid transforms: {', '.join(sorted(TRANSFORMS))}")
    signature = inspect.signature(TRANSFORMS[name])
    return tuple(p for p in signature.parameters if p not in _CALL_ARGS)


def validate_steps(steps: Sequence[Step | tuple[str, float, Mapping[str, object]]]) -> list[Step]:
    """Check every step's name, probability and params before any image is touched.

    Params are checked by running the step once on a tiny probe image, so anything
    accepted here is accepted by the transform itself. Returns the steps as
    :class:`Step` tuples.
    """
    checked: list[Step] = []
    probe = Image.new(RGB, _PROBE_SIZE)
    for index, raw in enumerate(steps):
        if len(raw) != 3:
            raise ValueError(f"step {index} must be (name, probability, params), got {raw!r}")
        name, probability, params = raw
        try:
            step = Step(name, probability, dict(params))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"step {index} ({name}): params must be a mapping, got {params!r}") from exc
        accepted = step_params(step.name)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
            raise ValueError(f"step {index} ({name}): probability must be in [0, 1], got {probability!r}")
        unknown = sorted(set(step.params) - set(accepted))
        if unknown:
            raise ValueError(f"step {index} ({step.name}): unknown params {unknown}; accepted: {list(accepted)}")
        try:
            TRANSFORMS[step.name](probe, np.zeros((0, BOX_SIZE)), np.random.default_rng(0), **step.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"step {index} ({step.name}): {exc}") from exc
        checked.append(step)
    return checked


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def derive_seed(seed: int, index: int) -> int:
    """A 64-bit seed for output ``index`` of ``seed``; stable across processes and platforms."""
    entropy = [_check_seed(seed), _check_seed(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


def seed_for_key(seed: int, key: str) -> int:
    """A 64-bit seed for one item, from a task seed and the item's key.

    Uses SHA-256 rather than ``hash()``, which is salted per process.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return derive_seed(seed, int.from_bytes(digest[:8], "big"))


def compose(
    image: Image.Image,
    boxes: np.ndarray,
    steps: Sequence[Step | tuple[str, float, Mapping[str, object]]],
    seed: int,
    *,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> Augmented:
    """Apply each step with its probability, all draws from one generator seeded with ``seed``.

    Per step, in list order: one uniform draw decides whether it runs (``p = 0``
    never, ``p = 1`` always), then the step draws its own parameters. The draw
    order is fixed, so the same seed gives the same bytes. ``kept`` is over the
    input boxes: a box dropped by any step stays dropped.
    """
    return _run(image, boxes, validate_steps(steps), seed, min_visible)


def _run(image: Image.Image, boxes: np.ndarray, checked: list[Step], seed: int, min_visible: float) -> Augmented:
    boxes = _check_inputs(image, boxes, min_visible)
    rng = np.random.default_rng(_check_seed(seed))
    survivors = np.arange(len(boxes))
    current = Augmented(image, boxes, np.ones(len(boxes), dtype=bool))
    for step in checked:
        if rng.random() >= step.probability:
            continue
        current = TRANSFORMS[step.name](current.image, current.boxes, rng, min_visible=min_visible, **step.params)
        survivors = survivors[current.kept]
    kept = np.zeros(len(boxes), dtype=bool)
    kept[survivors] = True
    out_boxes = np.array(current.boxes, dtype=np.float64)
    out_boxes.setflags(write=False)
    kept.setflags(write=False)
    # A copy when no step ran, so callers may edit the result without touching the input.
    out_image = image.copy() if current.image is image else current.image
    return Augmented(out_image, out_boxes, kept)


def augment_n(
    image: Image.Image,
    boxes: np.ndarray,
    steps: Sequence[Step | tuple[str, float, Mapping[str, object]]],
    seed: int,
    n: int,
    *,
    min_visible: float = DEFAULT_MIN_VISIBLE,
) -> list[Augmented]:
    """``n`` augmented copies; copy ``i`` is ``compose`` with :func:`derive_seed` ``(seed, i)``.

    Each copy depends only on ``(seed, i)``, so copies can be produced on any node,
    in any order, and one copy can be regenerated alone.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    _check_seed(seed)
    checked = validate_steps(steps)
    return [_run(image, boxes, checked, derive_seed(seed, i), min_visible) for i in range(n)]
