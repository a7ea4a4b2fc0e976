"""Synthetic images with known properties."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SIZE = (96, 64)  # width, height


def flat(value: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A uniform gray image: brightness value/255, no edges at all."""
    return Image.new("RGB", size, (value, value, value))


def checkerboard(cell: int = 4, size: tuple[int, int] = SIZE, low: int = 40, high: int = 215) -> Image.Image:
    """Hard edges everywhere: the sharpest image we can make."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    board = (((yy // cell) + (xx // cell)) % 2).astype(np.uint8)
    arr = np.where(board[..., None] == 1, high, low).astype(np.uint8).repeat(3, axis=2)
    return Image.fromarray(arr, "RGB")


def blurred(radius: float = 6.0, **kwargs) -> Image.Image:
    """The checkerboard, Gaussian-blurred: same mean brightness, far weaker edges."""
    return checkerboard(**kwargs).filter(ImageFilter.GaussianBlur(radius))


def noise(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def truncated_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def make_known_set(folder: Path) -> dict[str, str]:
    """A folder of five images with known properties plus two corrupt files.

    Returns ``{relative path: property}``.
    """
    known = {
        "dark.png": "dark",
        "bright.png": "bright",
        "sharp.png": "sharp",
        "blurry.png": "blurry",
        "sub/noise.png": "noise",
    }
    save(flat(10), folder / "dark.png")
    save(flat(245), folder / "bright.png")
    save(checkerboard(), folder / "sharp.png")
    save(blurred(), folder / "blurry.png")
    save(noise(1), folder / "sub/noise.png")
    (folder / "truncated.png").write_bytes(truncated_png(noise(2)))
    (folder / "text.jpg").write_text("this is not an image")
    (folder / "notes.txt").write_text("not an item: wrong extension, not listed")
    known["truncated.png"] = "corrupt"
    known["text.jpg"] = "corrupt"
    return known


def make_many(folder: Path, n: int) -> list[str]:
    """``n`` small distinct images named so that sorted order is index order."""
    names = []
    for i in range(n):
        name = f"img_{i:04d}.png"
        save(noise(1000 + i, size=(48, 32)), folder / name)
        names.append(name)
    return names
