"""Decoding: every unreadable file is an ItemError with a stable code."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from operators.image_io import ItemError, load_thumbnail
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
