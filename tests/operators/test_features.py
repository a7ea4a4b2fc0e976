"""Per-image numerics on images with known properties."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from operators import features as F
from operators.analyse import ImageFeatures
from operators.base import ImageBatch, Item, RecordTable
from tests.support import images


def _pixels(*imgs) -> np.ndarray:
    return np.stack([np.asarray(i.convert("RGB").resize((64, 64)), dtype=np.uint8) for i in imgs])


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (10, 10 / 255), (128, 128 / 255), (255, 1.0)],
                         ids=["black", "dark", "mid", "white"])
def test_brightness_of_flat_gray_is_its_level(value: int, expected: float) -> None:
    assert F.brightness(_pixels(images.flat(value)))[0] == pytest.approx(expected, abs=1e-4)


def test_brightness_weights_green_over_blue() -> None:
    from PIL import Image

    green = Image.new("RGB", (8, 8), (0, 255, 0))
    blue = Image.new("RGB", (8, 8), (0, 0, 255))
    g, b = F.brightness(_pixels(green, blue))
    assert g == pytest.approx(np.sqrt(0.691), abs=1e-4) and b == pytest.approx(np.sqrt(0.068), abs=1e-4)


def test_blur_orders_sharp_over_blurred_over_flat() -> None:
    sharp, soft, flat = F.laplacian_variance(_pixels(images.checkerboard(), images.blurred(), images.flat(128)))
    assert flat == pytest.approx(0.0, abs=1e-6)
    assert sharp > 20 * soft > 0


def test_contrast() -> None:
    board, flat = F.contrast(_pixels(images.checkerboard(low=0, high=255, size=(64, 64)), images.flat(90)))
    assert board == pytest.approx(0.5, abs=0.01) and flat == pytest.approx(0.0, abs=1e-6)


def test_histogram_counts_everything_and_is_drawable() -> None:
    h = F.histogram(np.array([0.0, 0.1, 0.1, 0.9, 1.0]), bins=4, value_range=(0.0, 1.0))
    assert h["counts"] == [3, 0, 0, 2]
    assert h["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0] and h["centers"] == [0.125, 0.375, 0.625, 0.875]
    assert F.histogram(np.array([]), bins=4) == {"edges": [], "centers": [], "counts": []}
    assert sum(F.histogram(np.array([2.0, 2.0]), bins=3)["counts"]) == 2  # constant column


def test_describe() -> None:
    d = F.describe(np.arange(101, dtype=float))
    assert (d["count"], d["min"], d["median"], d["max"], d["p05"], d["p95"]) == (101, 0, 50, 100, 5, 95)
    assert F.describe(np.array([])) == {"count": 0}


def test_image_features_batch_and_summary() -> None:
    pix = _pixels(images.flat(10), images.flat(245))
    batch = ImageBatch(items=[Item("a"), Item("b")], paths=["/a", "/b"], rgb=pix, width=np.array([200, 50]),
                       height=np.array([100, 50]), file_size=np.array([10, 20]))
    op = ImageFeatures(ImageFeatures.Params(histogram_bins=5))
    cols = op.process_batch(batch)
    assert list(cols["aspect_ratio"]) == [2.0, 1.0]
    records = [{"status": "ok", **{k: float(v[i]) for k, v in cols.items()}} for i in range(2)]
    summary = op.finalize(RecordTable(records)).summary["features"]
    assert summary["brightness"]["histogram"]["counts"] == [1, 0, 0, 0, 1]
    assert summary["brightness"]["histogram"]["edges"][0] == 0.0  # fixed range, comparable across tasks


def test_entropy_matches_pillow_on_the_same_pixels() -> None:
    img = images.noise(3, size=(64, 64))
    pix = np.asarray(img, dtype=np.uint8)[None]
    assert F.entropy(pix)[0] == pytest.approx(img.entropy(), rel=1e-6)
    assert F.entropy(_pixels(images.flat(128)))[0] == pytest.approx(np.log2(3))  # 3 bins of 768 in use


def test_colour_features_tell_gray_from_colour() -> None:
    from PIL import Image

    red = Image.new("RGB", (8, 8), (220, 20, 20))
    gray = images.checkerboard()
    sat, col, g = F.saturation(_pixels(red, gray)), F.colourfulness(_pixels(red, gray)), F.is_grayscale(
        _pixels(red, gray))
    assert sat[0] == pytest.approx(200 / 220, abs=1e-3) and sat[1] == pytest.approx(0.0, abs=1e-6)
    assert col[0] == pytest.approx(0.3 * np.hypot(200, 100), rel=1e-3) and col[1] == pytest.approx(0.0, abs=1e-3)
    assert list(g) == [False, True]


@pytest.mark.parametrize("size", [(64, 48), (37, 64), (3, 3), (2, 9), (1, 1)], ids=str)
def test_find_edges_is_pillows_filter_bit_for_bit(size: tuple[int, int]) -> None:
    from PIL import Image, ImageFilter

    from operators.image_issues import find_edges

    for seed in range(3):
        gray = images.noise(seed, size=size).convert("L")
        expected = np.asarray(gray.filter(ImageFilter.FIND_EDGES))
        assert np.array_equal(find_edges(np.asarray(gray)), expected)
    flat = Image.new("L", size, 128)
    assert np.array_equal(find_edges(np.asarray(flat)), np.asarray(flat.filter(ImageFilter.FIND_EDGES)))


def test_counted_histograms_are_pillows(tmp_path) -> None:
    """Each image's 768 channel counts, counted for the whole batch at once, are Pillow's histogram of it,
    whatever block of the batch it falls in; given histograms are taken as they are."""
    from operators.image_io import load_thumbnail

    for seed in range(3):
        images.noise(seed, size=(300, 200)).save(tmp_path / f"{seed}.jpg")
    decoded = [load_thumbnail(str(tmp_path / f"{seed}.jpg"), 128) for seed in range(3)]
    rgb = np.stack([d.thumbnail for d in decoded] + [np.zeros((128, 128, 3), np.uint8)])
    pillow = np.array([Image.fromarray(t, "RGB").histogram() for t in rgb])
    assert np.array_equal(F.Planes(rgb).histograms, pillow)
    assert np.array_equal(F.Planes(rgb, pillow).histograms, pillow)
    assert np.allclose(F.entropy(F.Planes(rgb)), [_pillow_entropy(t) for t in rgb], rtol=1e-9)


def _pillow_entropy(thumbnail: np.ndarray) -> float:
    from PIL import Image

    return Image.fromarray(thumbnail, "RGB").entropy()


def _unit_values(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if kind == "uniform":
        return rng.random(shape, dtype=np.float32)
    if kind == "few_levels":  # ties, and neighbours far apart (where float32 differences round)
        return rng.choice(np.array([0.0, 0.3, 0.9, 1.0], dtype=np.float32), shape)
    if kind == "flat":
        return np.full(shape, 0.5, dtype=np.float32)
    if kind == "bright_skew":
        return np.clip(rng.normal(0.97, 0.05, shape), 0, 1).astype(np.float32)
    if kind == "float64":
        return rng.random(shape)
    return rng.random((shape[0], 1), dtype=np.float32)  # one value per row


@pytest.mark.parametrize("kind", ["uniform", "few_levels", "flat", "bright_skew", "float64", "one_value"])
def test_row_percentiles_equal_numpys_bit_for_bit(kind: str) -> None:
    rng = np.random.default_rng(7)
    qs = [99, 5, 50, 0, 100, 37.3, 0.1, 99.9]
    for trial in range(60):
        x = _unit_values(kind, rng, (int(rng.integers(1, 4)), int(rng.integers(1, 2500))))
        assert np.array_equal(F.row_percentiles(x, qs), np.percentile(x, qs, axis=1)), (trial, x.shape)


def test_row_percentiles_of_image_brightness_equal_numpys() -> None:
    batch = [images.noise(0), images.blurred(), images.checkerboard(), images.flat(3), images.flat(250)]
    planes = F.Planes(np.stack([np.asarray(img, dtype=np.uint8) for img in batch]))
    assert np.array_equal(F.row_percentiles(planes.hsp, [99, 5]), np.percentile(planes.hsp, [99, 5], axis=1))
