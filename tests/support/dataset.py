"""A small dataset with known properties for every task type, and a way to run a template directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tests.support import images

ROOT_ANNOTATIONS = "annotations.jsonl"


def smooth_gradient(size: tuple[int, int] = (160, 120), top: int = 120, noise: float = 15.0) -> Image.Image:
    """A dim horizontal gradient with mild noise: once blurred, cleanvision's edge measure calls it blurry."""
    w, h = size
    ramp = np.linspace(0, top, w)[None, :, None].repeat(h, 0).repeat(3, 2)
    arr = ramp + np.random.default_rng(0).normal(0, noise, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def scene(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Coloured rectangles on a blue background: a picture with structure, for perceptual hashes."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, (90, 120, 160))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        x1, y1 = x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return img


def make_dataset(folder: Path) -> dict[str, str]:
    """Images with known properties plus a manifest with labels and boxes. Returns {name: property}."""
    folder.mkdir(parents=True, exist_ok=True)
    props = {}

    def put(name: str, img: Image.Image, prop: str, **save) -> None:
        img.save(folder / name, **save)
        props[name] = prop

    for i in range(6):
        put(f"normal_{i}.png", images.noise(100 + i, size=(96, 72)), "normal")
    put("dark.png", images.noise(7, size=(96, 72)).point(lambda v: v // 12), "dark")
    put("light.png", images.noise(8, size=(96, 72)).point(lambda v: 245 + v // 26), "light")
    put("blurry.png", smooth_gradient().filter(ImageFilter.GaussianBlur(4)), "blurry")
    put("dup_a.png", images.noise(10, size=(96, 72)), "exact_duplicate")
    put("dup_b.png", images.noise(10, size=(96, 72)), "exact_duplicate")
    picture = scene(3)
    put("near_a.png", picture, "near_duplicate")
    put("near_b.jpg", picture, "near_duplicate", quality=90)  # re-encoded: other bytes, other pixels
    put("wide.png", images.noise(11, size=(400, 40)), "odd_aspect_ratio")
    put("gray.png", images.noise(12, size=(96, 72)).convert("L"), "grayscale")
    (folder / "broken.png").write_bytes(images.truncated_png(images.noise(13)))
    props["broken.png"] = "corrupt"
    lines = []
    labels = ["cat", "cat", "cat", "dog", "dog", "bird"]
    for i, label in enumerate(labels):
        boxes = [{"bbox": [10, 10, 30, 20], "label": label}]
        if i == 0:
            boxes.append({"bbox": [80, 60, 40, 30], "label": "tail"})  # partly outside the 96x72 image
        lines.append(json.dumps({"image": f"normal_{i}.png", "label": label, "boxes": boxes}))
    (folder / ROOT_ANNOTATIONS).write_text("\n".join(lines) + "\n")
    return props


def run_direct(folder: Path, template: str, operator_params: list[dict], out: Path,
               source: Path | None = None) -> tuple[dict, dict[str, list[dict]], list[dict]]:
    """Run a template in-process (no Ray), exactly as one job would: list, one chunk, finalize."""
    from jobs.assembly import copy_inputs
    from jobs.catalog import build_pipeline, parse_task_type, resolve_operators
    from jobs.layout import RunLayout
    from jobs.chunk import process_chunk
    from jobs.sources import list_items
    from operators.base import RecordTable
    from operators.pipeline import OK, STATUS
    from operators.registry import default_registry

    registry = default_registry()
    specs = [s.to_json() for s in resolve_operators(parse_task_type(template), operator_params, registry)]
    root, items = list_items(source or folder)
    out.mkdir(parents=True, exist_ok=True)
    records = process_chunk([], specs, str(root), items, [str(folder.parent)], str(out))
    table = RecordTable(records, STATUS, OK, root=str(root), output_dir=str(out))
    copies: list[tuple[str, str]] = []
    result, files = build_pipeline(specs, registry).finalize(table, copies=copies)
    copy_inputs(copies, str(root), RunLayout(out))  # cleaning's output: copy, as the job's assembly does it
    # What the job writes: each file's rows, and each record with the fields finalize set on it.
    files = {name: list(rows) for name, rows in files.items()}
    records = [{**record, **added} for record, added in zip(records, table.iter_added(), strict=True)]
    return result, files, records
