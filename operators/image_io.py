"""Decoding images safely into normalised thumbnails.

Every way an item can be unreadable becomes an :class:`ItemError` with a stable
``code``: the caller records it against the item and carries on with the rest.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass

import cv2
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

#: Hex digits kept of a pixel digest (128 bits).
DIGEST_HEX = 32

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
    thumbnail: np.ndarray  # (size, size, 3) uint8 RGB
    width: int
    height: int
    file_size: int
    format: str
    mode: str
    # Of the pixels as decoded (JPEGs at draft scale) and the original size: equal for byte-different files
    # that hold the same image; a candidate key that :func:`full_pixel_digest` confirms.
    digest: str
    # uint8 grayscale, aspect kept, longest side PREVIEW_SIDE (cleanvision's edge statistics); None when not asked.
    preview: np.ndarray | None

    @property
    def pixels(self) -> np.ndarray:
        """The thumbnail as float32 in [0, 1]."""
        return self.thumbnail.astype(np.float32) / 255.0


def draft_box(width: int, height: int, side: int) -> tuple[int, int]:
    """The size to ask libjpeg's scaled decoding for: the image's own aspect with its longest side at
    ``side``, so the decoded image is never smaller than the thumbnail and preview made from it."""
    longest = max(width, height, 1)
    return max(1, -(-side * width // longest)), max(1, -(-side * height // longest))


def load_thumbnail(path: str, size: int, max_pixels: int = DEFAULT_MAX_PIXELS, *, preview: bool = True,
                   out: np.ndarray | None = None) -> DecodedImage:
    """Decode ``path`` fully and return a ``size`` x ``size`` RGB thumbnail (written into ``out``, a
    ``(size, size, 3)`` uint8 array, when one is given: a batch's slot, so it is not copied again).

    Every byte of the image is decoded (a truncated file is an error), but a JPEG is
    decoded at the smallest of libjpeg's 1/2, 1/4 and 1/8 scales that still covers
    the thumbnail: that skips most of the inverse DCT, the larger part of decoding.
    The declared pixel count is checked before any pixel is decoded, so a
    decompression bomb costs a header read, not gigabytes of memory. The 64 px
    preview is made only when ``preview`` is true (a fifth of the decode's cost).
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
                if fmt in ("JPEG", "MPO"):
                    img.draft("RGB", draft_box(width, height, max(size, PREVIEW_SIDE)))
                img.load()
                rgb = _to_rgb(img)
                decoded = np.asarray(rgb, dtype=np.uint8)
                # OpenCV's area resampling: the same box average as Pillow's, several times faster on small images.
                if out is None:
                    thumb = cv2.resize(decoded, (size, size), interpolation=cv2.INTER_AREA)
                else:
                    thumb = cv2.resize(decoded, (size, size), dst=out, interpolation=cv2.INTER_AREA)
                digest = _pixel_digest(decoded.data, width, height)
                small = _preview(rgb, width, height) if preview else None
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
    return DecodedImage(thumbnail=thumb, width=width, height=height, file_size=file_size, format=fmt, mode=mode,
                        digest=digest, preview=small)


def full_pixel_digest(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Digest of the image decoded at full resolution in RGB, with its size: equal exactly when two files
    hold the same pixels; None when the file cannot be decoded. Costs a full decode, so it confirms
    candidates rather than screening every image."""
    try:
        rgb = load_rgb(path, max_pixels)
    except ItemError:
        return None
    return _pixel_digest(rgb.tobytes(), rgb.width, rgb.height)


def _pixel_digest(pixels: bytes | memoryview, width: int, height: int) -> str:
    digest = hashlib.sha256(pixels)
    digest.update(f"{width}x{height}".encode())
    return digest.hexdigest()[:DIGEST_HEX]


def _preview(rgb: Image.Image, width: int, height: int) -> np.ndarray:
    """cleanvision's blur preview: longest side PREVIEW_SIDE, bicubic, grayscale. Its size comes from the
    original dimensions, so a JPEG decoded at draft scale gets the same preview size."""
    ratio = max(width, height) / PREVIEW_SIDE
    gray = rgb.convert("L")
    if ratio > 1:
        gray = gray.resize((max(int(width // ratio), 1), max(int(height // ratio), 1)),
                           Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(gray, dtype=np.uint8)


# A gray view is taken from a JPEG decoded at no less than this many times its side: libjpeg's scaled
# decoding resamples differently from the area mean, and at the view's own scale a JPEG copy of a PNG
# would differ from it by that alone.
_VIEW_DRAFT = 4


def load_gray_view(path: str, side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """``path`` as a ``side`` x ``side`` uint8 gray view (the thumbnail's square, area resampling; a JPEG at
    draft scale), or None when the file cannot be decoded any more. Near-duplicate candidates are compared
    on it, so only candidates pay for it."""
    rgb = load_rgb_view(path, side, max_pixels)
    return None if rgb is None else gray_view_of(rgb, side)


def load_rgb_view(path: str, side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """``path`` as uint8 RGB at a size of at least ``_VIEW_DRAFT * side`` on its longest side (a JPEG at draft
    scale; other formats as they are), or None when the file cannot be decoded any more: for edits made on the
    colours before a gray view is taken (:meth:`operators.image_issues.DetailCheck.brightened`)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    return None
                if img.format in ("JPEG", "MPO"):
                    img.draft("RGB", draft_box(img.width, img.height, _VIEW_DRAFT * side))
                img.load()
                return np.asarray(_to_rgb(img), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def gray_view_of(rgb: np.ndarray, side: int) -> np.ndarray:
    """:func:`load_gray_view` of pixels already decoded (RGB uint8): Pillow's gray conversion, area-resampled."""
    gray = np.asarray(Image.fromarray(rgb, "RGB").convert("L"), dtype=np.uint8)
    return cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)


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
