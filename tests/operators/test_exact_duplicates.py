"""Exact duplicates: cheap candidates at draft scale, confirmed on full pixels before they are reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from operators import duplicates as D
from operators.hashing import file_digest
from operators.image_io import full_pixel_digest, load_thumbnail
from tests.support import images


def _file_digest(path: str) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None


def _save_png(img: Image.Image, path: Path, level: int) -> str:
    img.save(path, compress_level=level)
    return str(path)


def test_byte_identical_files_are_confirmed_without_decoding(tmp_path: Path) -> None:
    a = _save_png(images.noise(1), tmp_path / "a.png", 6)
    b = tmp_path / "b.png"
    b.write_bytes(Path(a).read_bytes())
    decoded: list[str] = []

    def pixel_digest(path: str) -> str | None:
        decoded.append(path)
        return full_pixel_digest(path)

    assert D.confirm_exact_groups([[0, 1]], [a, str(b)], _file_digest, pixel_digest) == [[0, 1]]
    assert decoded == []


def test_same_pixels_in_different_bytes_are_confirmed(tmp_path: Path) -> None:
    img = images.noise(2)
    a, b = _save_png(img, tmp_path / "a.png", 1), _save_png(img, tmp_path / "b.png", 9)
    assert Path(a).read_bytes() != Path(b).read_bytes()
    assert D.confirm_exact_groups([[0, 1]], [a, b], _file_digest, full_pixel_digest) == [[0, 1]]


def test_a_candidate_collision_is_split(tmp_path: Path) -> None:
    # Three files put forward as one candidate group: two hold the same pixels, the third differs by one pixel.
    img = images.noise(3)
    changed = img.copy()
    changed.putpixel((5, 5), (0, 0, 0) if img.getpixel((5, 5)) != (0, 0, 0) else (255, 255, 255))
    paths = [_save_png(img, tmp_path / "a.png", 1), _save_png(changed, tmp_path / "b.png", 1),
             _save_png(img, tmp_path / "c.png", 9)]
    assert D.confirm_exact_groups([[0, 1, 2]], paths, _file_digest, full_pixel_digest) == [[0, 2]]


def test_unreadable_members_leave_their_group(tmp_path: Path) -> None:
    img = images.noise(4)
    paths = [_save_png(img, tmp_path / "a.png", 1), _save_png(img, tmp_path / "b.png", 9), str(tmp_path / "gone.png")]
    assert D.confirm_exact_groups([[0, 1, 2]], paths, _file_digest, full_pixel_digest) == [[0, 1]]
    assert D.confirm_exact_groups([[0, 2]], paths, _file_digest, full_pixel_digest) == []


def test_jpeg_copy_with_other_metadata_is_a_candidate_and_confirmed(tmp_path: Path) -> None:
    """A JPEG re-saved with only a different comment holds the same entropy-coded data: the same pixels."""
    photo = images.noise(5, size=(640, 480))
    photo.save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    # Insert a COM segment after SOI: same image, different bytes.
    comment = b"copied"
    (tmp_path / "b.jpg").write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
                                     + data[2:])
    paths = [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    a, b = (load_thumbnail(p, 128) for p in paths)
    assert a.digest == b.digest  # candidates from the draft-scale decode
    assert np.array_equal(np.asarray(Image.open(paths[0])), np.asarray(Image.open(paths[1])))
    assert D.confirm_exact_groups([[0, 1]], paths, _file_digest, full_pixel_digest) == [[0, 1]]
