"""The default blur score at the mildest blur the detection benchmark injects (k = 1: a Gaussian of sigma one
pixel of a 128 px view of the image), on pictures of known content: a flat background with thin detail, a
photo-like scene, small images and text.

What is known to be missed is written down as strict expected failures, with the score measured
(``docs/blur.md``, "Limits"): a change that finds them makes them pass, which fails the run until they are
moved to the found ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.operators.test_image_issues import THRESHOLD, blur, photo, sharpness, text_page


def thin_detail(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """One-pixel dark lines and a thin red circle on a flat near-white background: nearly all of the picture
    is flat, and its only detail is a pixel wide."""
    w, h = size
    img = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        draw.line([(w * 0.2, h * (0.2 + 0.1 * i)), (w * 0.8, h * (0.25 + 0.1 * i))], fill=(20, 20, 60), width=1)
    draw.ellipse([w * 0.4, h * 0.1, w * 0.6, h * 0.3], outline=(200, 0, 0), width=1)
    return img


FOUND = {
    "photo": lambda: photo(3),
    "small_photo": lambda: photo(5, (90, 60)),
}
# Measured at the default measure: the sigma-1 copy's score, over the 0.68 threshold.
MISSED = {
    "thin_detail": (thin_detail, 0.875),
    "text_page": (text_page, 0.729),
    "small_text": (lambda: text_page((120, 90)), 0.969),
    "small_drawing": (lambda: thin_detail((100, 75)), 0.682),
}
EVERY = {**FOUND, **{name: make for name, (make, _) in MISSED.items()}}


@pytest.mark.parametrize("make", EVERY.values(), ids=EVERY.keys())
def test_a_sharp_picture_is_not_blurry_and_its_mild_blur_scores_lower(make, tmp_path: Path) -> None:
    img = make()
    sharp, mild = sharpness(img, blur(img, 1.0), tmp_path=tmp_path)
    assert sharp == pytest.approx(1.0)  # one-pixel steps and lines: as sharp as the score goes
    assert mild < sharp


@pytest.mark.parametrize("make", FOUND.values(), ids=FOUND.keys())
def test_the_mild_blur_of_a_photo_is_flagged_whatever_its_size(make, tmp_path: Path) -> None:
    img = make()
    sharp, mild = sharpness(img, blur(img, 1.0), tmp_path=tmp_path)
    assert sharp >= THRESHOLD > mild


@pytest.mark.parametrize("make, measured", MISSED.values(), ids=MISSED.keys())
@pytest.mark.xfail(strict=True, reason="known limit: a sigma-1 blur of thin lines or text on a flat background keeps "
                                       "a steep step at the foot of each blurred line (docs/blur.md, Limits)")
def test_the_mild_blur_of_thin_detail_and_text_is_flagged(make, measured: float, tmp_path: Path) -> None:
    img = make()
    sharp, mild = sharpness(img, blur(img, 1.0), tmp_path=tmp_path)
    assert sharp >= THRESHOLD
    assert mild < THRESHOLD, f"scored {float(mild):.3f} (recorded: {measured})"
