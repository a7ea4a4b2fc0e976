"""Target-box annotations: parsing, per-box checks and dataset statistics.

One format, the one :class:`operators.base.Item` carries: a list of
``{"bbox": [x, y, w, h], "label": "cat"}`` objects, in pixels with the origin at
the image's top-left corner. Other keys on an entry (scores, ids) are ignored.
Boxes travel as ``(k, 4)`` float64 arrays with a parallel list of labels.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

BBOX = "bbox"
LABEL = "label"

#: Error code of an item whose ``boxes`` annotation is malformed, where the item cannot go on without them.
BAD_ANNOTATION = "bad_annotation"

# Finding codes of box_problems, stable for machines; messages are for people.
LABEL_NOT_ALLOWED = "label_not_allowed"
NON_POSITIVE_SIZE = "non_positive_size"
OUTSIDE_IMAGE = "outside_image"
PARTLY_OUTSIDE_IMAGE = "partly_outside_image"

# Keys of the dict box_statistics returns (its per-box flags reuse the finding codes).
IMAGES = "images"
IMAGES_WITH_BOXES = "images_with_boxes"
TOTAL_BOXES = "total_boxes"
BOXES_PER_IMAGE = "boxes_per_image"
BOXES_PER_LABEL = "boxes_per_label"
BOXES_OUTSIDE_IMAGE = "boxes_outside_image"
BOXES_PARTLY_OUTSIDE_IMAGE = "boxes_partly_outside_image"
BOXES_NON_POSITIVE_SIZE = "boxes_non_positive_size"
IMAGE_INDEX = "image_index"
LABELS = "labels"
AREA_RATIO = "area_ratio"
ASPECT_RATIO = "aspect_ratio"

_BOX_FIELDS = 4


def _empty_boxes() -> np.ndarray:
    return np.empty((0, _BOX_FIELDS), dtype=np.float64)


def _bbox_problem(bbox: object) -> str | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != _BOX_FIELDS:
        return f"{BBOX!r} must be a list of {_BOX_FIELDS} numbers [x, y, w, h], got {bbox!r}"
    # bool is an int to Python, but True is never a coordinate.
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in bbox):
        return f"{BBOX!r} must hold only numbers, got {bbox!r}"
    if not all(math.isfinite(v) for v in bbox):
        return f"{BBOX!r} must hold finite numbers, got {bbox!r}"
    return None


def _label_problem(entry: Mapping) -> str | None:
    if LABEL not in entry:
        return f"missing {LABEL!r}"
    label = entry[LABEL]
    if not isinstance(label, str):
        return f"{LABEL!r} must be a string, got {label!r}"
    if not label.strip():
        return f"{LABEL!r} is empty"
    return None


def parse_boxes(raw: object) -> tuple[np.ndarray, list[str], list[str]]:
    """Boxes and labels from an item's raw ``boxes`` annotation, plus what was wrong with it.

    Returns ``(boxes (k, 4) float64, labels, problems)``. A malformed entry (not
    an object; ``bbox`` not a list of 4 finite numbers; ``label`` missing, not a
    string or empty) is skipped and described in ``problems`` with its position,
    so one bad box does not cost the whole item. ``None`` means no annotation.
    """
    if raw is None:
        return _empty_boxes(), [], []
    if not isinstance(raw, (list, tuple)):
        return _empty_boxes(), [], [f"boxes must be a list of {{{BBOX!r}, {LABEL!r}}} objects, got {raw!r}"]
    boxes: list[list[float]] = []
    labels: list[str] = []
    problems: list[str] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            problems.append(f"box {i}: must be an object with {BBOX!r} and {LABEL!r}, got {entry!r}")
            continue
        found = [p for p in (_bbox_problem(entry.get(BBOX)), _label_problem(entry)) if p is not None]
        if found:
            problems.append(f"box {i}: {'; '.join(found)}")
            continue
        boxes.append([float(v) for v in entry[BBOX]])
        labels.append(entry[LABEL])
    return (np.array(boxes, dtype=np.float64) if boxes else _empty_boxes()), labels, problems


def _as_boxes(boxes: np.ndarray | Sequence) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return _empty_boxes()
    if b.ndim != 2 or b.shape[1] != _BOX_FIELDS:
        raise ValueError(f"boxes must have shape (k, {_BOX_FIELDS}) as [x, y, w, h], got {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or infinite values; parse them with parse_boxes first")
    return b


def _check_image_size(width: np.ndarray, height: np.ndarray) -> None:
    if not (np.all(width > 0) and np.all(height > 0)):
        raise ValueError("image width and height must be positive")


def _placement(b: np.ndarray, width: np.ndarray | float, height: np.ndarray | float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per box: positive size, entirely outside, partly outside, and the fraction of its area inside.

    A degenerate box has no geometry to place, so only positive-size boxes can
    be (partly) outside. A box that only touches an image edge is outside: it
    covers no pixel.
    """
    x, y, w, h = b.T
    positive = (w > 0) & (h > 0)
    inside_w = np.clip(np.minimum(x + w, width) - np.maximum(x, 0.0), 0.0, None)
    inside_h = np.clip(np.minimum(y + h, height) - np.maximum(y, 0.0), 0.0, None)
    area = np.where(positive, w * h, 1.0)
    inside = np.where(positive, inside_w * inside_h / area, 0.0)
    outside = positive & (inside_w * inside_h == 0)
    partly = positive & ~outside & ((x < 0) | (y < 0) | (x + w > width) | (y + h > height))
    return positive, outside, partly, inside


def _fmt_box(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def box_problems(boxes: np.ndarray, labels: Sequence[str], width: int, height: int,
                 allowed_labels: set[str] | None) -> list[dict]:
    """What is wrong with each box of one ``width`` x ``height`` image.

    One finding ``{"index", "code", "message"}`` per problem, ordered by box and
    then by code: ``label_not_allowed`` (only when ``allowed_labels`` is given),
    ``non_positive_size``, ``outside_image`` (covers no pixel) or
    ``partly_outside_image``. A box with a non-positive size gets no placement
    finding: it has no area to place.
    """
    b = _as_boxes(boxes)
    if len(labels) != b.shape[0]:
        raise ValueError(f"got {b.shape[0]} boxes but {len(labels)} labels")
    _check_image_size(np.asarray(width), np.asarray(height))
    positive, outside, partly, inside = _placement(b, width, height)
    not_allowed = np.zeros(b.shape[0], dtype=bool)
    if allowed_labels is not None:
        not_allowed = np.fromiter((label not in allowed_labels for label in labels), dtype=bool, count=b.shape[0])
    allowed_text = ", ".join(sorted(allowed_labels or ())) or "(none)"

    findings: list[dict] = []
    for i in np.flatnonzero(not_allowed | ~positive | outside | partly):
        i = int(i)
        box = _fmt_box(b[i])
        if not_allowed[i]:
            findings.append({"index": i, "code": LABEL_NOT_ALLOWED,
                             "message": f"label {labels[i]!r} is not one of the allowed labels: {allowed_text}"})
        if not positive[i]:
            findings.append({"index": i, "code": NON_POSITIVE_SIZE,
                             "message": f"box {box} has width {b[i, 2]:g} and height {b[i, 3]:g}; "
                                        f"both must be positive"})
        elif outside[i]:
            findings.append({"index": i, "code": OUTSIDE_IMAGE,
                             "message": f"box {box} lies entirely outside the {width}x{height} image"})
        elif partly[i]:
            findings.append({"index": i, "code": PARTLY_OUTSIDE_IMAGE,
                             "message": f"box {box} extends outside the {width}x{height} image "
                                        f"({1.0 - inside[i]:.0%} of its area)"})
    return findings


def box_statistics(boxes_per_image: list[np.ndarray], labels_per_image: Sequence[Sequence[str]],
                   widths: np.ndarray | Sequence[int], heights: np.ndarray | Sequence[int]) -> dict:
    """Box statistics over a set of images, computed over all boxes at once.

    Returned keys (counts are ints, per-box arrays are aligned, image order then
    box order, ready for histograms):

    - ``images``, ``images_with_boxes``, ``total_boxes``: counts.
    - ``boxes_per_image``: int64 array, one count per image.
    - ``boxes_per_label``: ``{label: count}``, most frequent first, ties by label.
    - ``boxes_outside_image``, ``boxes_partly_outside_image``,
      ``boxes_non_positive_size``: counts, with the same rules as :func:`box_problems`.
    - ``image_index`` (int64) and ``labels`` (list): the image and label of each box.
    - ``area_ratio``: box area (unclipped) over image area; ``aspect_ratio``: ``w / h``. Both
      are NaN for a box of non-positive size, whose shape means nothing and would
      distort a histogram; drop NaN before binning.
    - ``outside_image``, ``partly_outside_image``: bool arrays per box.
    """
    n_images = len(boxes_per_image)
    w_img = np.asarray(widths, dtype=np.float64)
    h_img = np.asarray(heights, dtype=np.float64)
    if not (len(labels_per_image) == n_images == w_img.size == h_img.size):
        raise ValueError(f"got {n_images} box arrays, {len(labels_per_image)} label lists, "
                         f"{w_img.size} widths and {h_img.size} heights; they must match")
    _check_image_size(w_img, h_img)
    arrays = [_as_boxes(b) for b in boxes_per_image]
    counts = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    for i, (a, labels) in enumerate(zip(arrays, labels_per_image, strict=True)):
        if len(labels) != a.shape[0]:
            raise ValueError(f"image {i}: got {a.shape[0]} boxes but {len(labels)} labels")

    b = np.concatenate(arrays) if arrays else _empty_boxes()
    image_index = np.repeat(np.arange(n_images, dtype=np.int64), counts)
    img_w, img_h = w_img[image_index], h_img[image_index]
    positive, outside, partly, _ = _placement(b, img_w, img_h)
    w, h = b[:, 2], b[:, 3]
    nan = np.full(b.shape[0], np.nan)
    area_ratio = np.divide(w * h, img_w * img_h, out=nan.copy(), where=positive)
    aspect_ratio = np.divide(w, h, out=nan.copy(), where=positive)

    labels = [label for per_image in labels_per_image for label in per_image]
    by_label = sorted(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        IMAGES: n_images,
        IMAGES_WITH_BOXES: int(np.count_nonzero(counts)),
        TOTAL_BOXES: int(b.shape[0]),
        BOXES_PER_IMAGE: counts,
        BOXES_PER_LABEL: dict(by_label),
        BOXES_OUTSIDE_IMAGE: int(np.count_nonzero(outside)),
        BOXES_PARTLY_OUTSIDE_IMAGE: int(np.count_nonzero(partly)),
        BOXES_NON_POSITIVE_SIZE: int(np.count_nonzero(~positive)),
        IMAGE_INDEX: image_index,
        LABELS: labels,
        AREA_RATIO: area_ratio,
        ASPECT_RATIO: aspect_ratio,
        OUTSIDE_IMAGE: outside,
        PARTLY_OUTSIDE_IMAGE: partly,
    }
