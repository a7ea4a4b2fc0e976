"""The default ('rayproc') issue profile on synthetic images of known properties: blur whatever the content and
size, near duplicates of each kind of edit, different pictures kept apart, and the profile switch."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from pydantic import ValidationError

from operators import duplicates as D
from operators import features as F
from operators import hashing as H
from operators.image_io import load_thumbnail
from operators.image_issues import BLURRY_THRESHOLDS, ImageIssues
from tests.support import images
from tests.support.dataset import run_direct, scene

THRESHOLD = BLURRY_THRESHOLDS["rayproc"]


def clip_art(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A few flat-coloured shapes with dark outlines on a white background: mostly flat, a few hard edges."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = int(rng.integers(w // 8, w // 2)), int(rng.integers(h // 8, h // 2))
        box = [x0, y0, x0 + int(rng.integers(w // 6, w // 3)), y0 + int(rng.integers(h // 6, h // 3))]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(2) else draw.rectangle)(box, fill=fill, outline="black", width=3)
    return img


def text_page(size: tuple[int, int] = (300, 400)) -> Image.Image:
    """Black lines of text-like strokes on white, like a scanned page: thin edges, wide margins."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    for row, y in enumerate(range(40, size[1] - 40, 18)):
        draw.text((30, y), f"Line {row}: the quick brown fox jumps over the lazy dog", fill=0)
    return img.convert("RGB")


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Coloured rectangles on blue with mild sensor noise."""
    arr = np.asarray(scene(seed, size), dtype=np.float32)
    arr += np.random.default_rng(seed).normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def blur(img: Image.Image, k: float) -> Image.Image:
    """Gaussian blur of ``k`` pixels of a 128 px view of the image (or of its own pixels when it is smaller)."""
    return img.filter(ImageFilter.GaussianBlur(k * max(1.0, max(img.size) / 128)))


def sharpness(*imgs: Image.Image, tmp_path: Path) -> np.ndarray:
    """``edge_sharpness`` as the pipeline computes it: on the 128 px thumbnail the decoder makes."""
    thumbs = []
    for i, img in enumerate(imgs):
        img.save(tmp_path / f"{i}.png")
        thumbs.append(load_thumbnail(str(tmp_path / f"{i}.png"), 128).thumbnail)
    sizes = np.array([img.size for img in imgs])
    return F.edge_sharpness(np.stack(thumbs), F.upscale_factors(sizes[:, 0], sizes[:, 1], 128))


CONTENT = {
    "clip_art": lambda: clip_art(1),
    "product_shot": lambda: clip_art(2, (400, 400)),
    "text_page": text_page,
    "photo": lambda: photo(3),
    "small_drawing": lambda: clip_art(4, (64, 48)),
    "small_photo": lambda: photo(5, (90, 60)),
}


@pytest.mark.parametrize("make", CONTENT.values(), ids=CONTENT.keys())
def test_sharp_images_are_not_blurry_and_their_blurred_copies_are(make, tmp_path: Path) -> None:
    img = make()
    sharp, soft, softer = sharpness(img, blur(img, 1.5), blur(img, 2.5), tmp_path=tmp_path)
    assert sharp >= THRESHOLD
    assert soft < THRESHOLD and softer < THRESHOLD
    assert softer <= soft < sharp


def test_sharpness_does_not_depend_on_contrast_or_brightness() -> None:
    steps = np.zeros((3, 128, 128, 3), dtype=np.uint8)
    steps[0, :, 64:] = 200  # strong
    steps[1, :, :] = 100
    steps[1, :, 64:] = 130  # faint, mid-gray
    steps[2, :, :] = 220
    steps[2, :, 64:] = 250  # faint, bright
    soft = np.stack([np.asarray(Image.fromarray(s).filter(ImageFilter.GaussianBlur(2))) for s in steps])
    assert F.edge_sharpness(steps) == pytest.approx([1.0, 1.0, 1.0])
    blurred = F.edge_sharpness(soft)
    assert np.ptp(blurred) <= 0.05 and blurred.max() < THRESHOLD


@pytest.mark.parametrize("sigma, low, high", [(1.0, 0.45, 0.7), (2.0, 0.3, 0.5), (3.0, 0.2, 0.35)],
                         ids=["sigma1", "sigma2", "sigma3"])
def test_sharpness_of_a_blurred_step_falls_as_the_blur_widens(sigma: float, low: float, high: float) -> None:
    step = np.zeros((1, 128, 128, 3), dtype=np.uint8)
    step[0, :, 64:] = 200
    soft = np.asarray(Image.fromarray(step[0]).filter(ImageFilter.GaussianBlur(sigma)))[None]
    assert low <= float(F.edge_sharpness(soft)[0]) <= high


def test_an_image_without_edges_is_not_blurry_but_a_smooth_one_is() -> None:
    flat = np.full((1, 128, 128, 3), 128, dtype=np.uint8)
    ramp = np.repeat(np.linspace(20, 220, 128).astype(np.uint8)[None, None, :, None], 128, axis=1)
    ramp = np.repeat(ramp, 3, axis=3)
    assert F.edge_sharpness(flat)[0] == 1.0
    assert F.edge_sharpness(ramp)[0] < THRESHOLD  # all change and none of it sharp: a blurred picture


# ----- near duplicates ------------------------------------------------------------------------------


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _levels(img: Image.Image, factor: float) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) * factor, 0, 255).astype(np.uint8), "RGB")


EDITS = {
    "resized": lambda img: img.resize((img.width * 6 // 10, img.height * 6 // 10), Image.Resampling.BICUBIC),
    "jpeg_q60": lambda img: _jpeg(img, 60),
    "brightened": lambda img: _levels(img, 1.25),
    "darkened": lambda img: _levels(img, 0.7),
    "grayscale": lambda img: img.convert("L"),
    # 4% off the left, 3% off the top, 7% of the width and 8% of the height in all.
    "cropped": lambda img: img.crop((round(img.width * 0.04), round(img.height * 0.03), round(img.width * 0.97),
                                     round(img.height * 0.95))),
}


def _analyse(folder: Path, tmp_path: Path, params: dict | None = None) -> tuple[dict, dict[str, dict]]:
    result, files, _ = run_direct(folder, "sys_data_analyse", [{"id": "image_issues", "params": params or {}}],
                                  tmp_path / "out")
    return result, {row["item"]: row for row in files["issues.jsonl"]}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
@pytest.mark.parametrize("make", [lambda: photo(11), lambda: clip_art(12)], ids=["photo", "clip_art"])
def test_an_edited_copy_is_grouped_with_its_original_and_nothing_else(make, edit, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    original = make()
    original.save(folder / "original.png")
    edit(original).save(folder / "copy.png")
    for seed in range(6):  # different pictures of the same kinds
        photo(100 + seed).save(folder / f"other_photo_{seed}.png")
        clip_art(200 + seed).save(folder / f"other_art_{seed}.png")
    result, rows = _analyse(folder, tmp_path)
    assert result["issues"]["near_duplicate_groups"] == [["copy.png", "original.png"]]
    assert rows["copy.png"]["scores"]["near_duplicates"] == 0.5
    assert rows["other_photo_0.png"]["scores"]["near_duplicates"] == 1.0


def test_different_pictures_that_share_a_layout_are_not_grouped(tmp_path: Path) -> None:
    """Recoloured and rearranged drawings: close enough for a hash to collide now and then, not for the layout."""
    folder = tmp_path / "images"
    folder.mkdir()
    for seed in range(40):
        clip_art(300 + seed).save(folder / f"art_{seed:02d}.png")
        images.noise(400 + seed, (120, 90)).save(folder / f"noise_{seed:02d}.png")
    result, _ = _analyse(folder, tmp_path)
    assert result["issues"]["near_duplicate_groups"] == []
    assert result["issues"]["counts"]["near_duplicates"] == 0


def _with_mark(img: Image.Image) -> Image.Image:
    """The same drawing with one small extra detail in a corner (a letter on a die, a door in an igloo)."""
    marked = img.copy()
    w, h = marked.size
    ImageDraw.Draw(marked).rectangle([w * 3 // 4, h // 10, w * 3 // 4 + w // 12, h // 10 + h // 10], fill="black")
    return marked


def _drawing_copy_and_variant(tmp_path: Path) -> Path:
    """A folder with a drawing, a JPEG copy of it and the drawing with one extra detail."""
    folder = tmp_path / "images"
    folder.mkdir()
    original = clip_art(12)
    original.save(folder / "original.png")
    _jpeg(original, 70).save(folder / "copy.png")
    _with_mark(original).save(folder / "variant.png")
    return folder


def test_look_alike_drawings_differing_in_one_detail_are_kept_apart(tmp_path: Path) -> None:
    folder = _drawing_copy_and_variant(tmp_path)
    thumbs = np.stack([load_thumbnail(str(folder / n), 128, preview=False).thumbnail
                       for n in ("original.png", "variant.png")])
    unit = H.normalized_layout(F.layout_descriptor(F.Planes(thumbs)))
    assert float(unit[0] @ unit[1]) >= 0.9  # the layouts alone would group the variant
    result, rows = _analyse(folder, tmp_path)
    assert result["issues"]["near_duplicate_groups"] == [["copy.png", "original.png"]]
    assert rows["variant.png"]["scores"]["near_duplicates"] == 1.0
    assert result["issues"]["thresholds"]["near_duplicate_difference"] == 0.15


def _gray_view(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L").resize((F.DETAIL_SIDE, F.DETAIL_SIDE), Image.Resampling.BOX), np.float32)


@pytest.mark.parametrize("edit", [lambda img: img, lambda img: _levels(img, 1.4), lambda img: _levels(img, 0.6),
                                  lambda img: img.convert("L")], ids=["same", "brightened", "darkened", "gray"])
def test_local_difference_ignores_tone_changes(edit) -> None:
    original = clip_art(21)
    views = np.stack([_gray_view(original)]), np.stack([_gray_view(edit(original))])
    assert F.local_difference(*views)[0] < 0.05


def test_local_difference_finds_a_detail_one_picture_has() -> None:
    original = clip_art(21)
    difference = F.local_difference(np.stack([_gray_view(original)]), np.stack([_gray_view(_with_mark(original))]))
    assert difference[0] > 1.0


def test_local_difference_needs_two_stacks_of_one_shape() -> None:
    with pytest.raises(ValueError, match="one shape"):
        F.local_difference(np.zeros((1, 8, 8)), np.zeros((1, 8, 9)))


def test_similarity_hash_bits_follow_the_layout_correlation() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1, 256)).astype(np.float32)
    near = base + 0.1 * rng.normal(size=(1, 256)).astype(np.float32)
    unrelated = rng.normal(size=(50, 256)).astype(np.float32)
    h = H.similarity_hash(np.concatenate([base, near, 3.0 * base + 7.0, unrelated]))
    assert H.hamming(h[0], h[2]) == 0  # offset and scale do not count
    assert H.hamming(h[0], h[1]) <= 6
    assert np.median(H.hamming(h[0], h[3:])) >= 20
    # Hashes stored by one release are compared with those of the next: the hyperplanes must not change.
    assert H.hash_to_hex(H.similarity_hash(np.arange(256, dtype=np.float32)[None])[0]) == "0f5dc16a534e9fee"


def test_layout_hex_round_trips_the_stretched_levels() -> None:
    layout = np.array([[10.0, 20.0, 30.0, 40.0], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    rows = [H.hex_to_layout(s) for s in H.layout_to_hex(layout)]
    assert rows[0].tolist() == [0, 85, 170, 255]
    assert rows[1].tolist() == [0, 0, 0, 0]


def test_confirmed_groups_are_stars_not_chains() -> None:
    """a~b~c~d with only neighbours similar: components would make one group of four."""
    hashes = np.array([0, 1, 3, 7], dtype=np.uint64)  # each one bit from the next
    chain = {(0, 1), (1, 2), (2, 3)}

    def confirm(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.array([(min(a, b), max(a, b)) in chain for a, b in zip(i.tolist(), j.tolist(), strict=True)])

    assert D.near_duplicate_groups(hashes, 3) == [[0, 1, 2, 3]]
    assert D.near_duplicate_groups(hashes, 3, confirm=confirm) == [[0, 1, 2]]


def test_a_pair_near_in_either_hash_is_a_candidate() -> None:
    hashes = np.array([[0, 0], [0xFFFF, 1], [0xFFFF0000, 0xFFFFFFFF]], dtype=np.uint64)
    seen: list[tuple[int, int]] = []

    def confirm(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        seen.extend(zip(i.tolist(), j.tolist(), strict=True))
        return np.ones(i.size, dtype=bool)

    assert D.near_duplicate_groups(hashes, 2, confirm=confirm) == [[0, 1]]
    assert seen == [(0, 1)]


def test_items_sharing_a_hash_are_still_confirmed_unless_their_keys_agree() -> None:
    hashes = np.zeros(3, dtype=np.uint64)
    keys = np.array([[1, 2], [1, 2], [9, 9]], dtype=np.uint8)
    assert D.near_duplicate_groups(hashes, 0, keys=keys, confirm=lambda i, j: np.zeros(i.size, bool)) == [[0, 1]]


# ----- the profile switch and its params --------------------------------------------------------------


def _drawing_and_blurred_copy(tmp_path: Path, seed: int, k: float) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    art = clip_art(seed)
    art.save(folder / "art.png")
    blur(art, k).save(folder / "art_blurred.png")
    return folder


def test_cleanvision_profile_keeps_cleanvisions_blur_flags_and_default(tmp_path: Path) -> None:
    folder = _drawing_and_blurred_copy(tmp_path, 7, 2.5)
    ours, rows = _analyse(folder, tmp_path)
    theirs, their_rows = _analyse(folder, tmp_path, {"issue_profile": "cleanvision"})
    assert {k for k, r in rows.items() if "blurry" in r["issues"]} == {"art_blurred.png"}
    assert {k for k, r in their_rows.items() if "blurry" in r["issues"]} == set()  # its blind spot
    assert ours["issues"]["thresholds"]["blurry"] == THRESHOLD
    assert theirs["issues"]["thresholds"]["blurry"] == 0.29
    assert "near_duplicate_similarity" not in theirs["issues"]["thresholds"]


def test_a_threshold_set_per_task_is_used(tmp_path: Path) -> None:
    folder = _drawing_and_blurred_copy(tmp_path, 8, 1.5)
    result, rows = _analyse(folder, tmp_path, {"blurry_threshold": 0.05})
    assert result["issues"]["thresholds"]["blurry"] == 0.05
    assert not any("blurry" in r["issues"] for r in rows.values())
    assert 0.05 < rows["art_blurred.png"]["scores"]["blurry"] < THRESHOLD


@pytest.mark.parametrize("params", [{"issue_profile": "imagededup"}, {"blurry_threshold": 1.5},
                                    {"near_duplicate_similarity": 2}, {"near_duplicate_distance": 17}],
                         ids=["profile", "blurry", "similarity", "distance"])
def test_bad_params_are_rejected(params: dict) -> None:
    with pytest.raises(ValidationError):
        ImageIssues.Params(**params)


@pytest.mark.parametrize("params", [{"issue_profile": "imagededup"}, {"blurry_threshold": -0.1}],
                         ids=["profile", "blurry"])
def test_bad_params_fail_when_the_task_is_resolved_with_the_field_named(params: dict) -> None:
    from jobs.catalog import CatalogError, parse_task_type, resolve_operators
    from operators.registry import default_registry

    with pytest.raises(CatalogError, match=f"params.{next(iter(params))}"):
        resolve_operators(parse_task_type("sys_data_analyse"), [{"id": "image_issues", "params": params}],
                          default_registry())


@pytest.mark.parametrize("profile", ["rayproc", "cleanvision"])
def test_cleaning_drops_the_near_duplicates_the_analysis_groups(profile: str, tmp_path: Path) -> None:
    folder = _drawing_copy_and_variant(tmp_path)
    for seed in range(4):
        photo(100 + seed).save(folder / f"other_photo_{seed}.png")
    result, _ = _analyse(folder, tmp_path, {"issue_profile": profile})
    groups = result["issues"]["near_duplicate_groups"]
    assert groups  # the copy is found by both profiles
    params = [{"id": "data_cleaning", "params": {"drop_near_duplicates": True, "near_duplicate_profile": profile}}]
    _, files, _ = run_direct(folder, "sys_data_cleaning", params, tmp_path / "cleaned")
    removed = {r["item"]: r["reason"] for r in files["removed.jsonl"]}
    assert removed == {m: f"near_duplicate_of: {g[0]}" for g in groups for m in g[1:]}


def test_a_copy_with_clipped_highlights_is_judged_by_the_direction_that_predicts_it() -> None:
    """Brightening clips a photo's highlights: the copy is a tone map of the original, not the other way round."""
    original = photo(11)
    a, b = _gray_view(original)[None], _gray_view(_levels(original, 1.3))[None]
    clipped_side = F._predicted_error(a, b)[0]  # the original predicted from the clipped copy's levels
    assert clipped_side > F._predicted_error(b, a)[0]
    assert F.local_difference(a, b)[0] < min(clipped_side, 0.15)


def test_cut_windows_cut_at_whole_pixels_and_resample_as_a_view_is_made() -> None:
    picture = photo(11)  # 320 x 240
    gray = np.asarray(picture.convert("L"), dtype=np.uint8)
    truth = (16 / 320, 5 / 240, 304 / 320, 230 / 240)
    cut = F.cut_windows(gray, [truth], 64)[0]
    assert np.array_equal(cut, cv2.resize(gray[5:230, 16:304], (64, 64), interpolation=cv2.INTER_AREA))


def test_crop_layouts_of_the_whole_picture_are_its_block_means() -> None:
    layout = np.random.default_rng(3).integers(0, 256, (5, 256)).astype(np.float32)
    plain, crops = H.crop_layouts(layout)
    blocks = layout.reshape(5, 8, 2, 8, 2).mean(axis=(2, 4)).reshape(5, 64)
    np.testing.assert_allclose(plain, blocks, rtol=1e-5)
    assert crops.shape == (5, len(H.CROP_AXIS_WINDOWS) ** 2, 64)
    # The first hypothesis keeps the top-left 90% of each axis: 7.2 of the 8 blocks of each coarse row.
    weights = F.window_weights(8, 16, H.CROP_SCALES[0], 0.0)
    np.testing.assert_allclose(crops[:, 0], (weights @ layout.reshape(5, 16, 16) @ weights.T).reshape(5, 64),
                               rtol=1e-5)
    assert H.coarse_hash(np.full((1, 64), 7.0))[0] == 0  # a flat layout has no bits
    which = np.array([0, 17, 224, 3, 100])
    np.testing.assert_allclose(H.crop_layouts_of(layout, which), crops[np.arange(5), which], rtol=1e-5)
    # The last keeps every axis whole, and crop_kept tells each hypothesis's shares.
    np.testing.assert_allclose(crops[:, -1], plain, rtol=1e-5)
    across, down = H.crop_kept(np.array([0, len(H.CROP_AXIS_WINDOWS) - 1, len(H.CROP_AXIS_WINDOWS) ** 2 - 1]))
    assert across.tolist() == [0.9, 1.0, 1.0] and down.tolist() == [0.9, 0.9, 1.0]


def _pale(img: Image.Image) -> Image.Image:
    """The drawing in pale tones (levels 150-255): brightened, most of it clips to white."""
    levels = np.asarray(img.convert("RGB"), dtype=np.float32)
    return Image.fromarray((150.0 + levels * (105.0 / 255.0)).astype(np.uint8), "RGB")


@pytest.mark.parametrize("gain", [1.25, 1.4], ids=["x1.25", "x1.4"])
def test_a_brightened_copy_whose_highlights_clip_is_grouped_by_the_simulated_check(gain: float,
                                                                                   tmp_path: Path) -> None:
    """The pale parts of the copy clip to white, so its view no longer predicts the original's (the plain check
    fails); the original brightened and clipped the same way is the copy. A blank image matches nothing."""
    from operators.base import RecordTable
    from operators.image_issues import LAYOUT_HASH, DetailCheck, bright_links
    from operators.pipeline import ITEM, OK, STATUS

    folder = tmp_path / "images"
    folder.mkdir()
    original = _pale(clip_art(12))
    original.save(folder / "original.png")
    _levels(original, gain).save(folder / "copy.png")
    Image.new("RGB", (200, 150), "white").save(folder / "blank.png")  # a flat view is predicted by anything
    for seed in range(6):
        _pale(clip_art(200 + seed)).save(folder / f"other_art_{seed}.png")
        photo(100 + seed).save(folder / f"other_photo_{seed}.png")
    result, _, records = run_direct(folder, "sys_data_analyse", [], tmp_path / "out")
    assert result["issues"]["near_duplicate_groups"] == [["copy.png", "original.png"]]
    table = RecordTable(records, STATUS, OK, root=str(folder))
    names = table.values(ITEM)
    at = {name: k for k, name in enumerate(names)}
    detail = DetailCheck(table, 0.15)
    pair = np.array([at["original.png"]]), np.array([at["copy.png"]])
    assert not detail(*pair)[0] and detail.brightened(*pair)[0]
    assert not detail.brightened(np.array([at["original.png"]]), np.array([at["blank.png"]]))[0]
    hashes = np.array([H.hex_to_hash(h) for h in table.values(LAYOUT_HASH)], dtype=np.uint64)
    owner, copy = bright_links(table, hashes, 4, detail)
    assert {(names[a], names[b]) for a, b in zip(owner.tolist(), copy.tolist())} <= {("original.png", "copy.png")}


def test_the_brightened_layout_is_the_layout_clipped_at_white() -> None:
    rgb = np.stack([np.asarray(photo(1).resize((128, 128)), dtype=np.uint8),
                    np.asarray(_pale(clip_art(3)).resize((128, 128)), dtype=np.uint8)])
    planes = F.Planes(rgb)
    assert np.allclose(F.brightened_layout(planes, 1.0), F.layout_descriptor(planes), atol=1e-3)
    bright = F.brightened_layout(planes, 1.4)
    assert bright.max() <= 255.0 and (bright >= F.layout_descriptor(planes) - 1e-3).all()
    assert (bright[1] >= 254.9).mean() > 0.5  # the pale drawing is mostly white once brightened
