"""Decoding images safely into normalised thumbnails.

Every way an item can be unreadable becomes an :class:`ItemError` with a stable
``code``: the caller records it against the item and carries on with the rest.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

#: File extensions treated as images when a folder is listed.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

#: Pillow's format names each image extension may hold (MPO is a multi-picture JPEG from cameras).
EXTENSION_FORMATS = {
    ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".png": {"PNG"}, ".bmp": {"BMP"}, ".gif": {"GIF"},
    ".tif": {"TIFF"}, ".tiff": {"TIFF"}, ".webp": {"WEBP"},
}

#: Longest side of the small aspect-preserving grayscale preview (cleanvision's blur resolution).
PREVIEW_SIDE = 64

#: Default decompression-bomb limit (pixels), well below what 24 GiB could hold per worker.
DEFAULT_MAX_PIXELS = 100_000_000


class ItemError(Exception):
    """One item could not be processed. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (size, size, 3) float32 in [0, 1]
    width: int
    height: int
    file_size: int
    format: str
    mode: str
    digest: str  # of the decoded pixels: equal for byte-different files that hold the same image
    preview: np.ndarray  # uint8 grayscale, aspect kept, longest side PREVIEW_SIDE (for edge statistics)


def load_thumbnail(path: str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode ``path`` fully and return a ``size`` x ``size`` RGB thumbnail.

    The declared pixel count is checked before any pixel is decoded, so a
    decompression bomb costs a header read, not gigabytes of memory.
    """
    try:
        file_size = os.path.getsize(path)
    except OSError as exc:
        raise ItemError("unreadable", f"cannot read file: {exc.strerror or exc}") from exc
    if file_size == 0:
        raise ItemError("empty_file", "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns before it raises for bombs; we enforce our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width <= 0 or height <= 0:
                    raise ItemError("bad_dimensions", f"declared size {width}x{height} is invalid")
                if width * height > max_pixels:
                    raise ItemError(
                        "too_many_pixels",
                        f"declared size {width}x{height} exceeds the limit of {max_pixels} pixels",
                    )
                fmt = img.format or "UNKNOWN"
                mode = img.mode
                ext = os.path.splitext(path)[1].lower()
                if ext in EXTENSION_FORMATS and fmt not in EXTENSION_FORMATS[ext]:
                    raise ItemError("extension_mismatch", f"the file holds {fmt} data but its name ends in {ext}")
                if fmt == "JPEG":
                    # Let libjpeg decode at reduced scale: same thumbnail, a fraction of the work.
                    img.draft("RGB", (size * 2, size * 2))
                img.load()
                rgb = _to_rgb(img)
                thumb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
                digest.update(f"{rgb.width}x{rgb.height}".encode())
                preview = _preview(rgb)
    except ItemError:
        raise
    except UnidentifiedImageError as exc:
        raise ItemError("not_an_image", "file is not a recognised image format") from exc
    except Image.DecompressionBombError as exc:
        raise ItemError("too_many_pixels", str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc)
        code = "truncated" if "truncated" in msg or "broken data stream" in msg else "decode_error"
        raise ItemError(code, f"image could not be decoded: {msg}") from exc
    pixels = np.asarray(thumb, dtype=np.float32) / 255.0
    return DecodedImage(pixels=pixels, width=width, height=height, file_size=file_size, format=fmt, mode=mode,
                        digest=digest.hexdigest(), preview=preview)


def _preview(rgb: Image.Image) -> np.ndarray:
    ratio = max(rgb.width, rgb.height) / PREVIEW_SIDE
    small = rgb
    if ratio > 1:
        small = rgb.resize((max(int(rgb.width // ratio), 1), max(int(rgb.height // ratio), 1)),
                           Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(small.convert("L"), dtype=np.uint8)


def load_rgb(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` at full resolution as RGB, with the same limits as :func:`load_thumbnail`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise ItemError("too_many_pixels", f"declared size {img.width}x{img.height} exceeds the limit")
                img.load()
                return _to_rgb(img).copy()
    except ItemError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ItemError("decode_error", f"image could not be decoded: {exc}") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white so transparent pixels do not read as black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
