"""Hostile and broken image files, each with the failure code rayproc must report for it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.support import images


def _png(width: int, height: int, *, color_type: int = 2, extra: bytes = b"", idat: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def bomb() -> bytes:
    """Declares 60,000 x 60,000 pixels (10.8 GB as RGB) in a few dozen bytes."""
    return _png(60_000, 60_000)


def huge_palette() -> bytes:
    """A palette image whose PLTE chunk holds 4,096 entries (PNG allows 256)."""
    plte = bytes(range(256)) * 48  # 12,288 bytes = 4,096 RGB entries
    length = struct.pack(">I", len(plte))
    crc = struct.pack(">I", zlib.crc32(b"PLTE" + plte) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes([i % 256] * 32) for i in range(32))
    return _png(32, 32, color_type=3, extra=length + b"PLTE" + plte + crc, idat=zlib.compress(rows))


def write_hostile_set(folder: Path) -> dict[str, set[str]]:
    """Write the hostile files plus two good images. Returns {name: acceptable outcomes}, where an
    outcome is a failure code or "ok"."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bomb.png").write_bytes(bomb())
    (folder / "truncated.png").write_bytes(images.truncated_png(images.noise(7)))
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("GET / HTTP/1.1\r\n\r\n<html>not an image</html>")
    (folder / "palette.png").write_bytes(huge_palette())
    images.noise(8).save(folder / "png_named.jpg", format="PNG")
    images.save(images.noise(9), folder / "good_a.png")
    images.save(images.checkerboard(), folder / "good_b.jpg")
    return {
        "bomb.png": {"too_many_pixels"},
        "truncated.png": {"truncated"},
        "zero.jpg": {"empty_file"},
        "text.jpg": {"not_an_image"},
        # Pillow may repair an oversized palette or refuse it; either way it is reported, never a crash.
        "palette.png": {"ok", "decode_error", "not_an_image"},
        "png_named.jpg": {"extension_mismatch"},
        "good_a.png": {"ok"},
        "good_b.jpg": {"ok"},
    }
