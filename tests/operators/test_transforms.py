"""Seeded augmentations: boxes follow the pixels, and the same seed gives the same bytes."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from operators import annotations as A
from operators import transforms as T

SIZE = (96, 64)  # width, height
BACKGROUND = (40, 40, 40)
RED = (220, 30, 30)
GREEN = (30, 200, 60)
#: The red rectangle's box, and a small green one in the top-left corner.
RED_BOX = (20.0, 12.0, 32.0, 24.0)
CORNER_BOX = (0.0, 0.0, 12.0, 10.0)
LABELS = ["car", "sign"]
MID_GREY = 128
#: A pipeline that exercises every kind of step.
STEPS = [
    T.Step(T.HFLIP, 0.5, {}),
    T.Step(T.ROTATE, 0.7, {"degrees": (-20.0, 20.0)}),
    T.Step(T.RANDOM_RESIZED_CROP, 0.8, {"scale": (0.6, 1.0), "size": (80, 56)}),
    T.Step(T.COLOR_JITTER, 0.8, {}),
    T.Step(T.GAUSSIAN_NOISE, 0.5, {"sigma": 0.02}),
    T.Step(T.GAUSSIAN_BLUR, 0.3, {}),
]
REPO = Path(__file__).resolve().parents[2]


def _scene() -> tuple[Image.Image, np.ndarray]:
    """A grey image with a red rectangle and a green corner patch, and their boxes."""
    w, h = SIZE
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = BACKGROUND
    for (x, y, bw, bh), colour in ((RED_BOX, RED), (CORNER_BOX, GREEN)):
        arr[int(y):int(y + bh), int(x):int(x + bw)] = colour
    return Image.fromarray(arr, T.RGB), np.array([RED_BOX, CORNER_BOX])


def _flat(value: int) -> Image.Image:
    return Image.new(T.RGB, SIZE, (value, value, value))


def _checkerboard(cell: int = 4) -> Image.Image:
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    board = ((yy // cell + xx // cell) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.repeat(board[..., None], 3, axis=2), T.RGB)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _bytes(image: Image.Image) -> bytes:
    return np.asarray(image).tobytes()


def _mean_inside(image: Image.Image, box: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Mean colour of the whole pixels inside ``box`` shrunk by ``margin`` on every side."""
    x, y, w, h = box
    x0, y0 = math.ceil(x + margin), math.ceil(y + margin)
    x1, y1 = math.floor(x + w - margin), math.floor(y + h - margin)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box} has no pixels inside a margin of {margin}")
    return np.asarray(image, dtype=np.float64)[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)


def _overlap_fraction(box: tuple[float, ...], window: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    left, top, ww, wh = window
    ix = max(0.0, min(x + w, left + ww) - max(x, left))
    iy = max(0.0, min(y + h, top + wh) - max(y, top))
    return ix * iy / (w * h)


# --- geometry ---------------------------------------------------------------


@pytest.mark.parametrize(("transform", "expected"), [
    (T.hflip, [SIZE[0] - RED_BOX[0] - RED_BOX[2], RED_BOX[1], RED_BOX[2], RED_BOX[3]]),
    (T.vflip, [RED_BOX[0], SIZE[1] - RED_BOX[1] - RED_BOX[3], RED_BOX[2], RED_BOX[3]]),
], ids=["hflip", "vflip"])
def test_flips_move_the_box_exactly(transform: T.Transform, expected: list[float]) -> None:
    image, boxes = _scene()
    out = transform(image, boxes[:1], _rng())
    assert out.boxes.tolist() == [expected]
    assert out.kept.tolist() == [True]
    assert _mean_inside(out.image, out.boxes[0]) == pytest.approx(RED)


def test_quarter_turn_with_expand_maps_box_and_pixels() -> None:
    image, boxes = _scene()
    out = T.rotate(image, boxes[:1], _rng(), degrees=(90, 90), expand=True)
    x, y, w, h = RED_BOX
    assert out.image.size == (SIZE[1], SIZE[0])
    assert out.boxes[0] == pytest.approx([y, SIZE[0] - x - w, h, w])
    # Same pixels as Pillow's own lossless quarter turn, so boxes and pixels share one mapping.
    assert _bytes(out.image) == _bytes(image.transpose(Image.Transpose.ROTATE_90))
    assert _mean_inside(out.image, out.boxes[0]) == pytest.approx(RED)


@pytest.mark.parametrize("expand", [False, True], ids=["fixed-canvas", "expanded-canvas"])
def test_rotate_by_zero_is_identity(expand: bool) -> None:
    image, boxes = _scene()
    out = T.rotate(image, boxes, _rng(), degrees=(0, 0), expand=expand)
    assert _bytes(out.image) == _bytes(image)
    assert out.boxes.tolist() == boxes.tolist() and out.kept.all()


@pytest.mark.parametrize("degrees", [17.0, 30.0, -45.0, 135.0], ids=["17deg", "30deg", "minus45deg", "135deg"])
def test_rotated_box_is_the_bounding_box_of_the_turned_rectangle(degrees: float) -> None:
    image, boxes = _scene()
    out = T.rotate(image, boxes[:1], _rng(), degrees=(degrees, degrees), expand=True)
    red = np.all(np.abs(np.asarray(out.image, dtype=int) - RED) < 40, axis=2)
    ys, xs = np.nonzero(red)
    x, y, w, h = out.boxes[0]
    # Interpolated edge pixels may reach one pixel past the exact corners.
    assert xs.min() >= x - 1 and xs.max() + 1 <= x + w + 1
    assert ys.min() >= y - 1 and ys.max() + 1 <= y + h + 1
    assert xs.min() == pytest.approx(x, abs=1.5) and ys.max() + 1 == pytest.approx(y + h, abs=1.5)


@pytest.mark.parametrize("expand", [False, True], ids=["fixed-canvas", "expanded-canvas"])
@pytest.mark.parametrize("degrees", [25.0, -45.0, 180.0, 300.5], ids=["25deg", "minus45deg", "180deg", "300.5deg"])
def test_rotate_matches_pillow_convention(degrees: float, expand: bool) -> None:
    image, _ = _scene()
    out = T.rotate(image, np.zeros((0, 4)), _rng(), degrees=(degrees, degrees), expand=expand, fill=(0, 0, 0))
    reference = image.rotate(degrees, Image.Resampling.BILINEAR, expand=expand)
    assert out.image.size == reference.size
    diff = np.abs(np.asarray(out.image, dtype=int) - np.asarray(reference, dtype=int))
    assert diff.max() <= 1


def test_rotation_near_the_border_clips_the_box_instead_of_losing_it() -> None:
    image, _ = _scene()
    edge_box = np.array([[76.0, 20.0, 20.0, 24.0]])  # touches the right edge; turned, it pokes out
    out = T.rotate(image, edge_box, _rng(), degrees=(15, 15))
    assert out.kept.tolist() == [True]
    x, y, w, h = out.boxes[0]
    assert x >= 0 and y >= 0 and x + w == pytest.approx(SIZE[0]) and y + h <= SIZE[1]


def test_rotation_drops_a_corner_box_that_leaves_the_image() -> None:
    image, boxes = _scene()
    out = T.rotate(image, boxes, _rng(), degrees=(90, 90))  # the corner patch turns off the bottom edge
    assert out.kept.tolist() == [True, False]
    assert T.select_labels(LABELS, out.kept) == ["car"]
    assert len(out.boxes) == 1


@pytest.mark.parametrize("size", [(48, 32), (192, 128), (50, 100)], ids=["half", "double", "anisotropic"])
def test_resize_scales_boxes(size: tuple[int, int]) -> None:
    image, boxes = _scene()
    out = T.resize(image, boxes, _rng(), size=size)
    sx, sy = size[0] / SIZE[0], size[1] / SIZE[1]
    assert out.image.size == size
    assert out.boxes == pytest.approx(boxes * [sx, sy, sx, sy])
    assert _mean_inside(out.image, out.boxes[0], margin=2) == pytest.approx(RED, abs=2)


# --- crops ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12), ids=lambda s: f"seed{s}")
def test_random_resized_crop_keeps_boxes_on_the_rectangle(seed: int) -> None:
    image, boxes = _scene()
    out = T.random_resized_crop(image, boxes[:1], _rng(seed), scale=(0.4, 1.0), size=(64, 64))
    assert out.image.size == (64, 64)
    if out.kept[0]:
        assert _mean_inside(out.image, out.boxes[0], margin=2) == pytest.approx(RED, abs=3)


def test_random_resized_crop_drops_exactly_the_boxes_cropped_out() -> None:
    image, boxes = _scene()
    outcomes = set()
    for seed in range(40):
        window = T.crop_window(*SIZE, _rng(seed), scale=(0.2, 0.4))
        out = T.random_resized_crop(image, boxes, _rng(seed), scale=(0.2, 0.4), size=(48, 48))
        expected = [_overlap_fraction(box, window) >= T.DEFAULT_MIN_VISIBLE for box in (RED_BOX, CORNER_BOX)]
        assert out.kept.tolist() == expected, f"seed {seed}, window {window}"
        outcomes.update(expected)
    assert outcomes == {True, False}


def test_crop_drops_a_box_outside_the_window_and_masks_its_label() -> None:
    image, boxes = _scene()
    out = T.crop(image, boxes, _rng(), window=(16, 8, 48, 40))
    assert out.kept.tolist() == [True, False]
    assert T.select_labels(LABELS, out.kept) == ["car"]
    assert out.boxes.tolist() == [[4.0, 4.0, 32.0, 24.0]]


def test_crop_clips_a_partly_visible_box_to_the_window() -> None:
    image, boxes = _scene()
    out = T.crop(image, boxes[:1], _rng(), window=(40, 0, 56, 64))  # 12 of 32 columns stay: 37.5 %
    assert out.kept.tolist() == [True]
    assert out.boxes.tolist() == [[0.0, 12.0, 12.0, 24.0]]
    assert _mean_inside(out.image, out.boxes[0]) == pytest.approx(RED)


@pytest.mark.parametrize(("min_visible", "kept"), [(0.3, True), (0.375, True), (0.4, False)],
                         ids=["below", "at-threshold", "above"])
def test_min_visible_threshold(min_visible: float, kept: bool) -> None:
    image, boxes = _scene()
    out = T.crop(image, boxes[:1], _rng(), window=(40, 0, 56, 64), min_visible=min_visible)
    assert out.kept.tolist() == [kept]


# --- photometric ------------------------------------------------------------


@pytest.mark.parametrize(("transform", "params"), [
    (T.color_jitter, {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5}),
    (T.gaussian_noise, {"sigma": 0.05}),
    (T.gaussian_blur, {"radius": (1.0, 2.0)}),
], ids=["jitter", "noise", "blur"])
def test_photometric_transforms_change_pixels_not_boxes(transform: T.Transform, params: dict) -> None:
    image, boxes = _scene()
    out = transform(image, boxes, _rng(3), **params)
    assert out.boxes.tolist() == boxes.tolist() and out.kept.all()
    assert out.image.size == image.size
    assert _bytes(out.image) != _bytes(image)


@pytest.mark.parametrize(("transform", "params"), [
    (T.color_jitter, {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0}),
    (T.gaussian_noise, {"sigma": 0.0}),
    (T.gaussian_blur, {"radius": (0.0, 0.0)}),
], ids=["jitter", "noise", "blur"])
def test_photometric_transforms_at_zero_strength_are_identity(transform: T.Transform, params: dict) -> None:
    image, boxes = _scene()
    assert _bytes(transform(image, boxes, _rng(), **params).image) == _bytes(image)


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_brightness_factor_is_drawn_from_the_range(seed: int) -> None:
    out = T.color_jitter(_flat(MID_GREY), np.zeros((0, 4)), _rng(seed), brightness=0.4, contrast=0.0,
                         saturation=0.0)
    factor = _rng(seed).uniform(0.6, 1.4)  # brightness is the first draw
    assert np.asarray(out.image, dtype=float).mean() == pytest.approx(MID_GREY * factor, abs=1.0)


def test_noise_has_the_requested_spread() -> None:
    sigma = 0.04
    out = T.gaussian_noise(_flat(MID_GREY), np.zeros((0, 4)), _rng(), sigma=sigma)
    diff = np.asarray(out.image, dtype=float) - MID_GREY
    assert diff.std() == pytest.approx(sigma * 255, rel=0.05)
    assert diff.mean() == pytest.approx(0.0, abs=0.2)


def test_blur_weakens_edges() -> None:
    board = _checkerboard()
    out = T.gaussian_blur(board, np.zeros((0, 4)), _rng(), radius=(1.5, 2.0))
    assert np.asarray(out.image, dtype=float).std() < 0.5 * np.asarray(board, dtype=float).std()
    assert _bytes(out.image) == _bytes(board.filter(ImageFilter.GaussianBlur(_rng().uniform(1.5, 2.0))))


# --- pipelines and determinism ----------------------------------------------


def test_compose_with_probability_zero_is_identity() -> None:
    image, boxes = _scene()
    steps = [T.Step(name, 0.0, {}) for name in T.TRANSFORMS]
    out = T.compose(image, boxes, steps, seed=7)
    assert _bytes(out.image) == _bytes(image)
    assert out.boxes.tolist() == boxes.tolist() and out.kept.all()


def test_compose_with_probability_one_applies() -> None:
    image, boxes = _scene()
    out = T.compose(image, boxes, [(T.HFLIP, 1.0, {}), (T.RESIZE, 1.0, {"size": (48, 32)})], seed=7)
    flipped = T.hflip(image, boxes, _rng())
    expected = T.resize(flipped.image, flipped.boxes, _rng(), size=(48, 32))
    assert _bytes(out.image) == _bytes(expected.image)
    assert out.boxes.tolist() == expected.boxes.tolist()


def test_compose_same_seed_same_bytes_and_different_seeds_differ() -> None:
    image, boxes = _scene()
    first, again = (T.compose(image, boxes, STEPS, seed=11) for _ in range(2))
    assert _bytes(first.image) == _bytes(again.image)
    assert first.boxes.tolist() == again.boxes.tolist() and first.kept.tolist() == again.kept.tolist()
    others = {_bytes(T.compose(image, boxes, STEPS, seed=s).image) for s in range(12, 18)}
    assert _bytes(first.image) not in others and len(others) > 1


def test_compose_mask_refers_to_the_input_boxes_across_steps() -> None:
    image, boxes = _scene()
    steps = [(T.ROTATE, 1.0, {"degrees": (90, 90)}), (T.HFLIP, 1.0, {}), (T.VFLIP, 1.0, {})]
    out = T.compose(image, boxes, steps, seed=0)
    assert out.kept.tolist() == [True, False]
    assert len(out.boxes) == 1 and T.select_labels(LABELS, out.kept) == ["car"]


def test_compose_does_not_touch_its_inputs() -> None:
    image, boxes = _scene()
    before_image, before_boxes = _bytes(image), boxes.copy()
    T.compose(image, boxes, STEPS, seed=3)
    assert _bytes(image) == before_image and np.array_equal(boxes, before_boxes)


def test_augment_n_is_distinct_and_reproducible() -> None:
    image, boxes = _scene()
    outs = T.augment_n(image, boxes, STEPS, seed=5, n=6)
    again = T.augment_n(image, boxes, STEPS, seed=5, n=6)
    assert len(outs) == 6
    assert len({_bytes(o.image) for o in outs}) == 6
    assert [_bytes(o.image) for o in outs] == [_bytes(o.image) for o in again]
    # Output i depends only on (seed, i), so one output can be regenerated alone.
    assert _bytes(outs[4].image) == _bytes(T.compose(image, boxes, STEPS, seed=T.derive_seed(5, 4)).image)
    assert T.augment_n(image, boxes, STEPS, seed=5, n=0) == []


def test_seeds_are_stable_and_spread() -> None:
    assert T.derive_seed(5, 1) == T.derive_seed(5, 1) != T.derive_seed(5, 2)
    assert T.seed_for_key(5, "a/b.jpg") == T.seed_for_key(5, "a/b.jpg")
    assert len({T.seed_for_key(5, k) for k in ("a.jpg", "b.jpg", "c.jpg")} | {T.seed_for_key(6, "a.jpg")}) == 4


def _fingerprint() -> str:
    """Digest of a pipeline's outputs, to compare between processes."""
    image, boxes = _scene()
    digest = hashlib.sha256()
    for out in T.augment_n(image, boxes, STEPS, seed=T.seed_for_key(9, "dir/item.png"), n=3):
        digest.update(_bytes(out.image) + out.boxes.tobytes() + out.kept.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("hash_seed", ["0", "4242"], ids=["hashseed0", "hashseed4242"])
def test_output_is_identical_in_another_process(hash_seed: str) -> None:
    script = "from tests.operators.test_transforms import _fingerprint; print(_fingerprint())"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == _fingerprint()


# --- registry, params and validation ----------------------------------------


@pytest.mark.parametrize("name", sorted(T.TRANSFORMS), ids=str)
def test_every_transform_is_documented_and_runs_with_defaults(name: str) -> None:
    transform = T.TRANSFORMS[name]
    assert (transform.__doc__ or "").strip()
    image, boxes = _scene()
    out = transform(image, boxes, _rng())
    assert out.image.mode == T.RGB and out.boxes.shape == (int(out.kept.sum()), 4)
    assert len(out.kept) == len(boxes)
    assert not out.boxes.flags.writeable


def test_step_params_lists_what_a_params_model_should_mirror() -> None:
    assert T.step_params(T.ROTATE) == ("degrees", "expand", "fill")
    assert T.step_params(T.HFLIP) == ()


@pytest.mark.parametrize("step", [
    ("shear", 0.5, {}),
    (T.HFLIP, 1.5, {}),
    (T.HFLIP, -0.1, {}),
    (T.HFLIP, float("nan"), {}),
    (T.HFLIP, None, {}),
    (T.HFLIP, 0.5, None),
    (T.HFLIP, 0.5, {"angle": 3}),
    (T.ROTATE, 0.5, {"degrees": (10, -10)}),
    (T.ROTATE, 0.5, {"fill": (0, 0)}),
    (T.RANDOM_RESIZED_CROP, 0.5, {"scale": (0.5, 1.5)}),
    (T.RANDOM_RESIZED_CROP, 0.5, {"size": (0, 10)}),
    (T.RESIZE, 0.5, {"size": (10.5, 10)}),
    (T.COLOR_JITTER, 0.5, {"brightness": -0.1}),
    (T.GAUSSIAN_NOISE, 0.5, {"sigma": float("nan")}),
    (T.GAUSSIAN_BLUR, 0.5, {"radius": (-1.0, 1.0)}),
    (T.HFLIP, 0.5, {"min_visible": 0.5}),
    (T.HFLIP, 0.5),
], ids=["unknown-name", "p-above-1", "p-negative", "p-nan", "p-none", "params-none",
        "unknown-param", "degrees-reversed", "fill-short",
        "scale-above-1", "size-zero", "size-fractional", "jitter-negative", "sigma-nan", "radius-negative",
        "min-visible-per-step", "missing-params"])
def test_bad_steps_are_refused_before_any_work(step: tuple) -> None:
    image, boxes = _scene()
    with pytest.raises(ValueError):
        T.compose(image, boxes, [step], seed=0)


@pytest.mark.parametrize(("image", "boxes", "seed"), [
    (Image.new("L", SIZE), np.zeros((0, 4)), 0),
    (Image.new(T.RGB, SIZE), np.zeros((2, 3)), 0),
    (Image.new(T.RGB, SIZE), np.array([[0.0, 0.0, -1.0, 4.0]]), 0),
    (Image.new(T.RGB, SIZE), np.array([[np.nan, 0.0, 1.0, 4.0]]), 0),
    (Image.new(T.RGB, SIZE), np.zeros((0, 4)), -1),
], ids=["grey-image", "boxes-wrong-shape", "negative-width", "nan-box", "negative-seed"])
def test_bad_inputs_are_refused(image: Image.Image, boxes: np.ndarray, seed: int) -> None:
    with pytest.raises(ValueError):
        T.compose(image, boxes, STEPS, seed=seed)


def test_annotations_round_trip() -> None:
    annotations = [{"bbox": list(RED_BOX), "label": "car"}, {"bbox": list(CORNER_BOX), "label": "sign"}]
    boxes, labels, problems = A.parse_boxes(annotations)
    assert problems == []
    assert boxes.tolist() == [list(RED_BOX), list(CORNER_BOX)] and labels == LABELS
    assert T.join_annotations(boxes, labels) == annotations
    assert A.parse_boxes([])[0].shape == (0, 4)
    with pytest.raises(ValueError):
        T.select_labels(LABELS, np.array([True]))
