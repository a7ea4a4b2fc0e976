"""Decoding: every unreadable file is an ItemError with a stable code."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from operators.image_io import ItemError, load_gray_view, load_thumbnail
from tests.support import images


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("name", "content", "code"), [
    ("empty.png", b"", "empty_file"),
    ("text.jpg", b"hello, not an image", "not_an_image"),
    ("bomb.png", _png_header_only(60_000, 60_000), "too_many_pixels"),
], ids=["zero-byte", "text-named-jpg", "bomb"])
def test_bad_files_raise_item_errors(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ItemError) as info:
        load_thumbnail(str(path), 64)
    assert info.value.code == code


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    path.write_bytes(images.truncated_png(images.noise(3)))
    with pytest.raises(ItemError) as info:
        load_thumbnail(str(path), 64)
    assert info.value.code == "truncated"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ItemError) as info:
        load_thumbnail(str(tmp_path / "nope.png"), 64)
    assert info.value.code == "unreadable"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "LA"])
def test_modes_become_rgb_thumbnails(tmp_path: Path, mode: str) -> None:
    img = images.noise(4).convert(mode) if mode != "I;16" else Image.new("I;16", (40, 30), 1000)
    path = tmp_path / ("x.tif" if mode in ("I;16", "CMYK") else "x.png")
    img.save(path)
    out = load_thumbnail(str(path), 32)
    assert out.pixels.shape == (32, 32, 3) and out.pixels.dtype.name == "float32"
    assert 0.0 <= out.pixels.min() and out.pixels.max() <= 1.0
    assert (out.width, out.height) == img.size


def test_transparent_pixels_read_as_white(tmp_path: Path) -> None:
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert load_thumbnail(str(tmp_path / "clear.png"), 8).pixels.min() == pytest.approx(1.0)


def test_jpeg_keeps_original_size(tmp_path: Path) -> None:
    images.noise(5, size=(1200, 900)).save(tmp_path / "big.jpg")
    out = load_thumbnail(str(tmp_path / "big.jpg"), 64)
    assert (out.width, out.height, out.format) == (1200, 900, "JPEG")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95], ids=["30%", "60%", "95%"])
def test_truncated_jpeg_is_caught_at_draft_scale(tmp_path: Path, keep: float) -> None:
    """Draft decoding skips inverse-DCT work, not data: every entropy-coded byte is still read."""
    images.noise(6, size=(640, 480)).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:int(len(data) * keep)])
    assert load_thumbnail(str(tmp_path / "whole.jpg"), 128).thumbnail.shape == (128, 128, 3)
    with pytest.raises(ItemError) as info:
        load_thumbnail(str(tmp_path / "cut.jpg"), 128)
    assert info.value.code == "truncated"


def test_jpeg_decodes_at_the_smallest_scale_that_covers_the_thumbnail() -> None:
    from operators.image_io import draft_box

    # Pillow picks the largest power-of-two reduction (up to 8) with both sides still >= the box.
    assert draft_box(640, 480, 128) == (128, 96)  # -> 1/4 scale, 160x120
    assert draft_box(4000, 3000, 128) == (128, 96)  # -> 1/8 scale, 500x375
    assert draft_box(100, 3000, 128) == (5, 128)
    assert draft_box(1, 1, 128) == (128, 128)


def test_gray_view_of_a_jpeg_matches_the_view_of_its_source(tmp_path: Path) -> None:
    """Near-duplicate candidates are compared on these views: a JPEG copy must look like its PNG original."""
    img = images.noise(3, (400, 300)).resize((100, 75)).resize((400, 300))
    img.save(tmp_path / "a.png")
    img.save(tmp_path / "a.jpg", quality=90)
    png, jpg = load_gray_view(str(tmp_path / "a.png"), 64), load_gray_view(str(tmp_path / "a.jpg"), 64)
    assert png.shape == jpg.shape == (64, 64) and png.dtype == np.uint8
    assert np.abs(png.astype(int) - jpg.astype(int)).mean() < 2


@pytest.mark.parametrize("content", [b"", b"hello, not an image", _png_header_only(60_000, 60_000)],
                         ids=["zero-byte", "text", "bomb"])
def test_gray_view_of_an_unreadable_file_is_none(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.png").write_bytes(content)
    assert load_gray_view(str(tmp_path / "bad.png"), 64) is None
    assert load_gray_view(str(tmp_path / "missing.png"), 64) is None
