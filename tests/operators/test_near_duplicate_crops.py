"""Near duplicates that were cropped: a picture and its crops (one side, two sides, centred; 5% and 10%) are
grouped, look-alike but different pictures are not, and the parts that find them (the crop search's wider
radius on the same bands, the match of a copy to its picture) do what they say on pictures of known shape."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from operators import duplicates as D
from operators import features as F
from operators import image_issues as I
from operators.hashing import hamming
from tests.operators.test_image_issues import _analyse, _with_mark, clip_art, photo


def _cut(img: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    """``img`` with these shares of its width and height cut off each side."""
    w, h = img.size
    return img.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))


#: Name -> shares cut off (left, top, right, bottom).
CROPS = {
    "one_side_5": (0.05, 0, 0, 0),
    "one_side_10": (0, 0, 0.10, 0),
    "two_sides_5": (0.05, 0, 0, 0.05),
    "two_sides_10": (0, 0.10, 0.10, 0),
    "centred_5": (0.025, 0.025, 0.025, 0.025),
    "centred_10": (0.05, 0.05, 0.05, 0.05),
}


@pytest.mark.parametrize("make", [lambda: photo(11), lambda: clip_art(12)], ids=["photo", "clip_art"])
def test_a_picture_and_its_crops_are_one_group_and_other_pictures_are_in_none(make, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    original = make()
    original.save(folder / "original.png")
    for name, cut in CROPS.items():
        _cut(original, *cut).save(folder / f"crop_{name}.png")
    for seed in range(4):  # different pictures of both kinds, each with a crop of its own
        for kind, picture in (("photo", photo(100 + seed)), ("art", clip_art(200 + seed))):
            picture.save(folder / f"other_{kind}_{seed}.png")
            _cut(picture, 0.04, 0.03, 0.03, 0.05).save(folder / f"other_{kind}_{seed}_crop.png")
    result, rows = _analyse(folder, tmp_path)
    groups = result["issues"]["near_duplicate_groups"]
    mine = sorted(["original.png", *(f"crop_{name}.png" for name in CROPS)])
    assert mine in groups
    # No group mixes two pictures; most of the others are found with their crop (one photo's coarse layout
    # moves too much under its crop for the search: 8 bits from its best hypothesis, docs/blur.md).
    others = [g for g in groups if g != mine]
    assert all(len(g) == 2 and g[1] == g[0].replace(".png", "_crop.png") for g in others)
    assert len(others) >= 6
    assert rows["crop_centred_10.png"]["scores"]["near_duplicates"] == pytest.approx(1 / 7, abs=1e-6)


def test_a_crop_of_a_look_alike_drawing_is_not_grouped_with_the_original(tmp_path: Path) -> None:
    """The variant has one small extra detail: cut by 10%, it matches the original's window everywhere else."""
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(12):
        original = clip_art(500 + seed)
        original.save(folder / f"art_{seed:02d}.png")
        _cut(_with_mark(original), 0.05, 0.05, 0.05, 0.05).save(folder / f"variant_{seed:02d}_crop.png")
    result, _ = _analyse(folder, tmp_path)
    assert result["issues"]["near_duplicate_groups"] == []


def test_match_crop_lands_a_plain_crop_on_the_pictures_own_pixels() -> None:
    picture = np.asarray(photo(11).convert("L"))  # 320 x 240
    copy = picture[7:231, 13:301]  # 288 x 224 of it, at its resolution
    scales = F.match_scales((320, 240), (288, 224))
    assert scales[0] == (288 / 320, 224 / 240)  # the exact scale first
    window = F.match_crop(picture, copy, scales[:1], min_correlation=-1.0)[0]
    np.testing.assert_allclose(window, (13 / 320, 7 / 240, 301 / 320, 231 / 240), atol=1e-9)
    view = cv2.resize(copy, (F.DETAIL_SIDE, F.DETAIL_SIDE), interpolation=cv2.INTER_AREA)
    cut = F.cut_windows(picture, [window], F.DETAIL_SIDE)
    assert np.array_equal(cut[0], view)  # the copy's own view, pixel for pixel


def test_match_crop_finds_a_crop_that_was_also_resized_by_its_shape() -> None:
    picture = np.asarray(clip_art(12).convert("L"))  # 320 x 240
    cut = picture[12:228, 0:288]  # 90% of each axis, from the left edge
    copy = cv2.resize(cut, (202, 151), interpolation=cv2.INTER_AREA)  # then made 0.7x
    scales = F.match_scales((320, 240), (202, 151))
    assert all(abs(a / d - (202 / 151) / (320 / 240)) < 1e-6 for a, d in scales)  # the copy's shape
    assert scales[0] != (202 / 320, 151 / 240)  # no exact scale: the copy is smaller than any crop kept
    windows = F.match_crop(picture, copy, scales)
    truth = np.array([0, 12 / 240, 288 / 320, 228 / 240])
    assert min(np.abs(np.array(w) - truth).max() for w in windows) <= 0.01
    view = cv2.resize(copy, (F.DETAIL_SIDE, F.DETAIL_SIDE), interpolation=cv2.INTER_AREA)
    aligned = F.cut_windows(picture, windows, F.DETAIL_SIDE)
    difference = F.local_difference(aligned, np.broadcast_to(view, aligned.shape)).min()
    whole = cv2.resize(picture, (F.DETAIL_SIDE, F.DETAIL_SIDE), interpolation=cv2.INTER_AREA)
    unaligned = F.local_difference(whole[None], view[None])[0]
    # Matched, within the whole-picture check's threshold and far under the unaligned difference; the crop
    # check's own threshold is stricter (a resampled drawing's thin lines, docs/blur.md).
    assert difference <= I.DEFAULT_DIFFERENCE and unaligned > 10 * difference


def test_match_scales_has_none_for_a_copy_of_another_shape() -> None:
    assert F.match_scales((320, 240), (240, 320)) == []  # a portrait copy of a landscape picture
    assert F.match_scales((320, 240), (0, 10)) == []


def test_query_pairs_with_fewer_bands_keeps_pairs_beyond_their_radius_that_share_a_band() -> None:
    """Three bands of 21-22 bits: a pair 4 bits apart with all four in the first band agrees on the other two
    and is kept; one with a bit in each band and one more is not found, as with the default radius."""
    index = np.array([0, 0b1111 << 60, 1 << 63 | 1 << 42 | 1 << 21 | 1 << 20], dtype=np.uint64)
    queries = np.array([[0]], dtype=np.uint64)  # item 0's one query: the hash 0
    owner, target, _ = D.query_pairs_in_blocks(index, [(0, queries)], 4, bands=3)
    assert target.tolist() == [1] and owner.tolist() == [0]
    assert int(hamming(index[0], index[2])) == 4  # within the radius, but no band in common
    owner, target, _ = D.query_pairs_in_blocks(index, [(0, queries)], 2)
    assert target.tolist() == []


@pytest.mark.parametrize("bands, distance", [(1, 4), (65, 4), (3, 64)], ids=["one_band", "too_many", "radius"])
def test_query_pairs_rejects_bands_it_cannot_search_by(bands: int, distance: int) -> None:
    with pytest.raises(ValueError, match="bands"):
        D.query_pairs_in_blocks(np.zeros(2, dtype=np.uint64), [(0, np.zeros((2, 1), dtype=np.uint64))], distance,
                                bands=bands)
