"""Issue detection on real images: rayproc, cleanvision and imagededup on one labelled set, in one run.

    python -m benchmarks.bench_detection [--originals 1500] [--per-issue 90] [--seed 0] [--skip imagededup]

The set is built from pictures that installed packages ship, so nothing is downloaded:

- photos: the nature wallpapers of Debian's ``mate-backgrounds`` cut into a 4x3 grid of tiles (those with
  in-focus detail: these are macro shots, and a tile of out-of-focus background is a blurred picture, not a clean
  one), and the photographs in scikit-image's ``data`` directory;
- product shots: the photographic stamps of ``tuxpaint-stamps-default`` composited on white (a subject on a
  large flat background);
- graphics: clip art from ``openclipart-png`` on white (flat colours, thin lines, lettering).

Every original is resized so its longest side is 160-480 px (one in six: 48-127 px, small images), saved as
JPEG (photos) or PNG (the rest). Flat pictures, strips (short side under 0.4 of the long one) and second copies
of one picture (32x32 grayscale thumbnails correlating at 0.98 or more) are dropped first, so two originals are
two different pictures. Then disjoint random
subsets of the originals get one injected issue each, with a known label:

- ``blurry_*``: Gaussian blur at three strengths, sigma = k x max(1, longest side / 128) px with k 1.0, 1.5 and
  2.5 (the blur a 128 px view of the image shows; small images are blurred in their own pixels);
- ``dark``: levels multiplied by 0.12-0.25;
- near duplicates (a new file beside the original): resized 0.5-0.9x, JPEG quality 60-80, cropped by up to 10% of
  each side in total, brightened (x1.2-1.4) or darkened (x0.6-0.8), converted to grayscale;
- ``exact_duplicates``: a byte copy of the original;
- ``truncated``: the file cut at 40-80% of its bytes;
- ``odd_aspect_ratio``: a strip of the original, short side / long side 0.15-0.3.

Each tool runs over the whole folder (cleanvision without the truncated files, which it cannot read). Per issue
type and tool: recall (injected images flagged with that issue) and the false-flag rate (clean originals flagged
with it; for duplicates, originals that have no copy). A near-duplicate copy counts as found when it shares a
group with its original (or an exact-duplicate group: a grayscale copy of a gray drawing is the same pixels).
Group precision is the share of grouped pairs that are truly copies of one picture.

rayproc runs in-process, exactly as one job's chunk does (``jobs.execution.process_chunk`` then the pipeline's
``finalize``), with the default ``sys_data_analyse`` operators, and again with ``issue_profile: cleanvision``.
imagededup's hashing methods (PHash, DHash, AHash, WHash) run with their default ``max_distance_threshold``
(10 bits) for near duplicates and 0 for exact ones. Results go to ``benchmarks/out/detection.json`` and a
Markdown table on stdout. The set is cached under ``--work`` between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

OUT = Path(__file__).parent / "out" / "detection.json"
DEFAULT_WORK = Path("/tmp/rayproc-bench-detection")

PHOTO_SOURCES = ("/usr/share/backgrounds/mate/nature",)
STAMP_SOURCE = "/usr/share/tuxpaint/stamps"
CLIPART_SOURCE = "/usr/share/openclipart/png"
#: scikit-image's photographs (its other files are synthetic or microscopy).
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "hubble_deep_field.jpg", "motorcycle_left.png", "page.png",
                  "rocket.jpg", "moon.png", "retina.jpg", "text.png", "horse.png")

IN_FOCUS_LAPLACIAN_VAR = 15.0
BLUR_STRENGTHS = {"blurry_k1.0": 1.0, "blurry_k1.5": 1.5, "blurry_k2.5": 2.5}
NEAR_KINDS = ("near_resized", "near_jpeg", "near_cropped", "near_brightened", "near_darkened", "near_grayscale")
INJECTED = (*BLUR_STRENGTHS, "dark", *NEAR_KINDS, "exact_copy", "truncated", "odd_aspect")
#: Which issue type each injected label must be flagged as.
ISSUE_OF = {**{k: "blurry" for k in BLUR_STRENGTHS}, "dark": "dark", **{k: "near_duplicates" for k in NEAR_KINDS},
            "exact_copy": "exact_duplicates", "truncated": "truncated", "odd_aspect": "odd_aspect_ratio"}
CLEAN = "clean"


@dataclass
class Entry:
    name: str
    label: str  # CLEAN or one of INJECTED
    source: str  # the original's file name (itself for originals)
    kind: str  # photo, product or graphic


# ----- building the labelled set ------------------------------------------------------------------


def _on_white(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _photo_tiles(rng: random.Random) -> list[Image.Image]:
    import skimage

    tiles = []
    for folder in PHOTO_SOURCES:
        for path in sorted(Path(folder).glob("*.jpg")):
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                for r in range(3):
                    for c in range(4):
                        tile = img.crop((c * w // 4, r * h // 3, (c + 1) * w // 4, (r + 1) * h // 3))
                        if _in_focus(tile):
                            tiles.append(tile)
    data = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_PHOTOS:
        if (data / name).exists():
            with Image.open(data / name) as img:
                tiles.append(img.convert("RGB"))
    rng.shuffle(tiles)
    return tiles


def _in_focus(tile: Image.Image) -> bool:
    """Whether a wallpaper tile holds in-focus detail at its own resolution (variance of the Laplacian >= 15):
    these wallpapers are macro shots, and a tile of their out-of-focus background is a blurred picture, not a
    clean one."""
    import cv2

    gray = np.asarray(tile.convert("L"), dtype=np.float32)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var()) >= IN_FOCUS_LAPLACIAN_VAR


def _files(folder: str, rng: random.Random, n: int) -> list[Image.Image]:
    """Up to ``n`` of the folder's PNGs, in a seeded random order, on white; files too large to be clip art
    (a few are posters of hundreds of megapixels) are passed over."""
    paths = sorted(Path(folder).rglob("*.png"))
    rng.shuffle(paths)
    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.width * img.height > 16_000_000:
                    continue
                out.append(_on_white(img))
        except (OSError, Image.DecompressionBombError):
            continue
        if len(out) == n:
            break
    return out


def _fit(img: Image.Image, rng: random.Random) -> Image.Image:
    longest = rng.randint(48, 127) if rng.random() < 1 / 6 else rng.randint(160, 480)
    w, h = img.size
    scale = longest / max(w, h)
    return img.resize((max(8, round(w * scale)), max(8, round(h * scale))), Image.Resampling.LANCZOS)


def _signature(img: Image.Image) -> np.ndarray:
    small = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64).ravel()
    small -= small.mean()
    return small / max(float(np.linalg.norm(small)), 1e-9)


def _distinct(candidates: list[tuple[Image.Image, str]], n: int) -> list[tuple[Image.Image, str]]:
    """Up to ``n`` candidates, dropping flat ones, strips (their aspect is an issue of its own) and any that
    is the same picture as one already kept (32x32 grayscale thumbnails correlating at 0.98 or more: clip-art
    collections hold recoloured and resized copies of one drawing)."""
    kept, signatures = [], []
    for img, kind in candidates:
        if np.asarray(img.convert("L")).std() < 4 or min(img.size) / max(img.size) < 0.4:
            continue
        sig = _signature(img)
        if signatures and float(np.max(np.stack(signatures) @ sig)) >= 0.98:
            continue
        kept.append((img, kind))
        signatures.append(sig)
        if len(kept) == n:
            break
    return kept


def _save(img: Image.Image, path: Path, kind: str) -> None:
    if kind == "photo":
        img.save(path, "JPEG", quality=92)
    else:
        img.save(path, "PNG")


def _blur(img: Image.Image, k: float) -> Image.Image:
    sigma = k * max(1.0, max(img.size) / 128)
    return img.filter(ImageFilter.GaussianBlur(sigma))


def _scale_levels(img: Image.Image, factor: float) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) * factor
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), img.mode)


def _near_copy(img: Image.Image, label: str, rng: random.Random) -> tuple[Image.Image, dict]:
    """The transformed copy and how to save it (JPEG quality for ``near_jpeg``)."""
    w, h = img.size
    if label == "near_resized":
        f = rng.uniform(0.5, 0.9)
        return img.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BICUBIC), {}
    if label == "near_jpeg":
        return img, {"format": "JPEG", "quality": rng.randint(60, 80)}
    if label == "near_cropped":
        fx, fy = rng.uniform(0.02, 0.10), rng.uniform(0.02, 0.10)
        left, top = rng.uniform(0, fx) * w, rng.uniform(0, fy) * h
        return img.crop((round(left), round(top), round(w - (fx * w - left)), round(h - (fy * h - top)))), {}
    if label == "near_brightened":
        return _scale_levels(img, rng.uniform(1.2, 1.4)), {}
    if label == "near_darkened":
        return _scale_levels(img, rng.uniform(0.6, 0.8)), {}
    if label == "near_grayscale":
        return img.convert("L"), {}
    raise ValueError(label)


def build_set(folder: Path, originals: int, per_issue: int, seed: int) -> list[Entry]:
    """Write the labelled set into ``folder`` (emptied first) and return its entries."""
    rng = random.Random(seed)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    photos = [(t, "photo") for t in _photo_tiles(rng)]
    stamps = [(img, "product") for img in _files(STAMP_SOURCE, rng, originals)]
    cliparts = [(img, "graphic") for img in _files(CLIPART_SOURCE, rng, originals * 2)]
    share = {"photo": photos, "product": stamps, "graphic": cliparts}
    want = {"photo": len(photos), "product": originals // 3}
    want["graphic"] = originals - min(want["photo"], len(photos)) - want["product"]
    pool: list[tuple[Image.Image, str]] = []
    for kind, imgs in share.items():
        pool += _distinct([(_fit(img, rng), kind) for img, kind in imgs[: want[kind] * 2]], want[kind])
    pool = _distinct(pool, len(pool))  # across kinds too
    rng.shuffle(pool)
    entries: list[Entry] = []
    images: dict[str, Image.Image] = {}
    for i, (img, kind) in enumerate(pool):
        name = f"orig_{i:04d}.{'jpg' if kind == 'photo' else 'png'}"
        _save(img, folder / name, kind)
        images[name] = img
        entries.append(Entry(name, CLEAN, name, kind))
    by_kind = {e.name: e.kind for e in entries}
    order = [e.name for e in entries]
    rng.shuffle(order)
    # In-place issues replace an original (it is no longer clean); copies sit beside their original.
    in_place = (*BLUR_STRENGTHS, "dark", "truncated", "odd_aspect")
    cursor = 0
    replaced: dict[str, Entry] = {}
    for label in INJECTED:
        for source in order[cursor:cursor + per_issue]:
            img, kind = images[source], by_kind[source]
            if label in in_place:
                entry = _inject_in_place(folder, source, img, kind, label, rng)
                replaced[source] = entry
            else:
                entries.append(_inject_copy(folder, source, img, kind, label, rng))
        cursor += per_issue
    entries = [replaced.get(e.name, e) for e in entries]
    (folder.parent / "labels.json").write_text(json.dumps([e.__dict__ for e in entries]))
    return entries


def _inject_in_place(folder: Path, source: str, img: Image.Image, kind: str, label: str,
                     rng: random.Random) -> Entry:
    path = folder / source
    if label in BLUR_STRENGTHS:
        _save(_blur(img, BLUR_STRENGTHS[label]), path, kind)
    elif label == "dark":
        _save(_scale_levels(img, rng.uniform(0.12, 0.25)), path, kind)
    elif label == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * rng.uniform(0.4, 0.8))])
    elif label == "odd_aspect":
        w, h = img.size
        ratio = rng.uniform(0.15, 0.3)
        strip = img.crop((0, 0, w, max(8, round(w * ratio)))) if w >= h else img.crop((0, 0, max(8, round(h * ratio)), h))
        _save(strip, path, kind)
    return Entry(source, label, source, kind)


def _inject_copy(folder: Path, source: str, img: Image.Image, kind: str, label: str, rng: random.Random) -> Entry:
    stem = Path(source).stem.replace("orig", "copy")
    if label == "exact_copy":
        name = f"{stem}_exact{Path(source).suffix}"
        shutil.copyfile(folder / source, folder / name)
        return Entry(name, label, source, kind)
    copy, save = _near_copy(img, label, rng)
    fmt = save.pop("format", None)
    suffix = ".jpg" if fmt == "JPEG" or (fmt is None and kind == "photo") else ".png"
    name = f"{stem}_{label}{suffix}"
    if suffix == ".jpg":
        copy.save(folder / name, "JPEG", quality=save.get("quality", 92))
    else:
        copy.save(folder / name, "PNG")
    return Entry(name, label, source, kind)


# ----- running the tools --------------------------------------------------------------------------


@dataclass
class Flags:
    """What one tool said: per issue, the flagged file names; per duplicate kind, the groups."""

    flagged: dict[str, set[str]]
    groups: dict[str, list[list[str]]]
    seconds: float


def _specs(params: dict) -> tuple[list[dict], object]:
    from jobs.catalog import parse_task_type, resolve_operators
    from operators.registry import default_registry

    registry = default_registry()
    specs = [s.to_json() for s in resolve_operators(parse_task_type("sys_data_analyse"),
                                                    [{"id": "image_issues", "params": params}], registry)]
    return specs, registry


def map_records(folder: Path, specs: list[dict], out: Path) -> list[dict]:
    """Every item's record, chunk by chunk as a job's map stage makes them."""
    from jobs.chunk import process_chunk

    items = sorted(os.listdir(folder))
    records = []
    for i in range(0, len(items), 256):
        records += process_chunk([], specs, str(folder), items[i:i + 256], [str(folder)], str(out))
    return records


def run_rayproc(folder: Path, params: dict) -> Flags:
    """The default analysis in-process, chunk by chunk as a job runs it; every duplicate group (the task's
    result keeps the first hundred), from the same operator on the same records."""
    import tempfile

    from jobs.catalog import build_pipeline
    from operators.base import RecordTable
    from operators.image_issues import ImageIssues
    from operators.pipeline import ITEM, OK, STATUS

    specs, registry = _specs(params)
    out = Path(tempfile.mkdtemp(prefix="rpdetect-"))
    start = time.perf_counter()
    records = map_records(folder, specs, out)
    table = RecordTable(records, STATUS, OK, root=str(folder), output_dir=str(out))
    pipeline = build_pipeline(specs, registry)
    _, files = pipeline.finalize(table)
    rows = list(files["issues.jsonl"])
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    flagged: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for issue in row["issues"]:
            flagged[issue].add(row[ITEM])
    flagged["truncated"] = {r[ITEM] for r in records if r.get(STATUS) != OK}
    issues_op = next(op for op in pipeline.operators if isinstance(op, ImageIssues))
    exact, near = issues_op.duplicate_groups(table)
    names = [table.value(ITEM, int(i)) for i in table.ok_index]
    groups = {"near_duplicates": [[names[i] for i in g] for g in near],
              "exact_duplicates": [[names[i] for i in g] for g in exact]}
    return Flags(dict(flagged), groups, seconds)


def _view(folder: Path, name: str, skip: set[str]) -> Path:
    """A folder of hard links to the files of ``folder`` except ``skip`` (what a tool that cannot read some
    files is given)."""
    view = folder.parent / name
    if view.exists():
        shutil.rmtree(view)
    view.mkdir()
    for item in os.listdir(folder):
        if item not in skip:
            os.link(folder / item, view / item)
    return view


def run_cleanvision(folder: Path, skip: set[str]) -> Flags:
    from cleanvision import Imagelab

    view = _view(folder, "cleanvision_view", skip)
    start = time.perf_counter()
    lab = Imagelab(data_path=str(view))
    lab.find_issues(n_jobs=1)
    seconds = time.perf_counter() - start
    issues = lab.issues
    flagged = {}
    for column in issues.columns:
        if column.startswith("is_") and column.endswith("_issue"):
            issue = column[3:-6]
            flagged[issue] = {Path(p).name for p in issues.index[issues[column]]}
    groups = {kind: [[Path(p).name for p in s] for s in lab.info[kind]["sets"]]
              for kind in ("near_duplicates", "exact_duplicates")}
    shutil.rmtree(view)
    return Flags(flagged, groups, seconds)


def run_imagededup(folder: Path, method: str, skip: set[str]) -> Flags:
    import logging

    from imagededup import methods

    logging.getLogger("imagededup").setLevel(logging.ERROR)
    hasher = getattr(methods, method)(verbose=False)
    view = _view(folder, "dedup_view", skip)
    start = time.perf_counter()
    encodings = hasher.encode_images(image_dir=str(view))
    near = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10)
    exact = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=0)
    seconds = time.perf_counter() - start
    shutil.rmtree(view)
    return Flags({"near_duplicates": {k for k, v in near.items() if v},
                  "exact_duplicates": {k for k, v in exact.items() if v}},
                 {"near_duplicates": _components(near), "exact_duplicates": _components(exact)}, seconds)


def _components(pairs: dict[str, list[str]]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, others in pairs.items():
        for b in others:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for x in list(parent):
        groups[find(x)].append(x)
    return [g for g in groups.values() if len(g) > 1]


# ----- scoring ------------------------------------------------------------------------------------


def score(entries: list[Entry], flags: Flags) -> dict:
    """Recall per injected label, false-flag rate per issue on clean originals, group precision."""
    sources_with_copies = {e.source for e in entries if e.label in NEAR_KINDS or e.label == "exact_copy"}
    clean = [e for e in entries if e.label == CLEAN]
    group_of: dict[str, dict[str, int]] = {}
    for kind, groups in flags.groups.items():
        group_of[kind] = {name: g for g, members in enumerate(groups) for name in members}
    rows = {}
    for label in INJECTED:
        issue = ISSUE_OF[label]
        hits = [e for e in entries if e.label == label]
        if issue not in flags.flagged and issue not in flags.groups:
            continue
        if issue in ("near_duplicates", "exact_duplicates"):
            # A grayscale copy of a gray drawing is pixel for pixel the original: an exact duplicate is found too.
            found = sum(1 for e in hits if any(_together(group_of.get(kind, {}), e.name, e.source)
                                              for kind in {issue, "exact_duplicates"}))
        else:
            found = sum(1 for e in hits if e.name in flags.flagged.get(issue, set()))
        rows[label] = {"issue": issue, "recall": found / len(hits) if hits else None, "n": len(hits)}
    false = {}
    for issue in sorted({*ISSUE_OF.values()}):
        if issue not in flags.flagged:
            continue
        pool = [e for e in clean if e.name not in sources_with_copies] if "duplicates" in issue else clean
        flagged = flags.flagged[issue]
        false[issue] = {"rate": sum(1 for e in pool if e.name in flagged) / max(len(pool), 1), "n": len(pool)}
    precision = {}
    source_of = {e.name: e.source for e in entries}
    for kind, groups in flags.groups.items():
        pairs = true_pairs = 0
        mixed = 0
        for members in groups:
            srcs = [source_of.get(m, m) for m in members]
            same = sum(1 for i in range(len(srcs)) for j in range(i + 1, len(srcs)) if srcs[i] == srcs[j])
            total = len(srcs) * (len(srcs) - 1) // 2
            pairs += total
            true_pairs += same
            mixed += len(set(srcs)) > 1
        precision[kind] = {"pair_precision": true_pairs / pairs if pairs else None, "groups": len(groups),
                           "mixed_groups": mixed}
    return {"recall": rows, "false_flags": false, "groups": precision, "seconds": round(flags.seconds, 2)}


def _together(where: dict[str, int], a: str, b: str) -> bool:
    return a in where and where.get(b) == where[a]


# ----- why crops are missed -----------------------------------------------------------------------


def cached_table(work: Path, folder: Path, params: dict):
    """The map stage's records as a :class:`RecordTable` over ``folder``, cached under ``work`` (keyed by the
    operator specs and the code's commit) so the finalize steps can be studied without decoding again."""
    import hashlib
    import pickle
    import tempfile

    from benchmarks.bench_analysis import source_commit
    from operators.base import RecordTable
    from operators.pipeline import OK, STATUS

    specs, _ = _specs(params)
    key = hashlib.sha256(json.dumps([specs, source_commit()], sort_keys=True).encode()).hexdigest()[:16]
    cache = work / f"records-{key}.pickle"
    if cache.exists():
        records = pickle.loads(cache.read_bytes())
    else:
        with tempfile.TemporaryDirectory(prefix="rpdetect-") as out:
            records = map_records(folder, specs, Path(out))
        cache.write_bytes(pickle.dumps(records))
    return RecordTable(records, STATUS, OK, root=str(folder))


def explain_crops(work: Path, folder: Path, entries: list[Entry]) -> dict:
    """Per cropped copy, where the search loses it: never a candidate of the crop search (the nearest of its
    original's crop hypotheses, in bits), a candidate whose coarse layouts correlate too little, one whose
    aligned check differs too much, or a confirmed link the star grouping put apart; with the crop's shape
    (the share of each axis kept) and the whole-picture hashes' distances. Also the crop search's candidates
    between different pictures that pass the correlation, with their check's difference: what a looser check
    would let through."""
    from operators import hashing as H
    from operators import image_issues as I
    from operators.pipeline import ITEM

    table = cached_table(work, folder, {})
    n = table.ok_count
    names = [table.value(ITEM, int(i)) for i in table.ok_index]
    at = {name: k for k, name in enumerate(names)}
    source_of = {e.name: e.source for e in entries}
    layouts = np.frombuffer(bytes.fromhex("".join(table.iter_values(I.LAYOUT))), dtype=np.uint8).reshape(n, -1)
    layout_hash = np.array([H.hex_to_hash(h) for h in table.iter_values(I.LAYOUT_HASH)], dtype=np.uint64)
    phash = np.array([H.hex_to_hash(h) for h in table.iter_values(I.PHASH)], dtype=np.uint64)
    plain = H.whole_layouts(layouts)
    index = H.coarse_hash(plain)
    detail = I.DetailCheck(table, I.DEFAULT_DIFFERENCE)
    limit = I.CROP_DIFFERENCE_SHARE * I.DEFAULT_DIFFERENCE
    started = time.perf_counter()
    groups = I.layout_groups(table, 4, I.DEFAULT_SIMILARITY, I.DEFAULT_DIFFERENCE)
    print(f"grouping: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    group_of = {m: g for g, members in enumerate(groups) for m in members}
    owner, target = I.crop_candidates(layouts, plain)
    which, correlation = H.best_crops_of(layouts, owner, plain[target])
    candidate = {(o, t): (float(r), float(h)) for o, t, r, h in
                 zip(owner.tolist(), target.tolist(), correlation.tolist(), H.crop_kept(which)[1].tolist())}
    rows = []
    for e in (e for e in entries if e.label == "near_cropped"):
        o, c = at.get(e.source), at.get(e.name)
        if o is None or c is None:
            continue
        with Image.open(folder / e.source) as pa, Image.open(folder / e.name) as pb:
            kept = (pb.width / pa.width, pb.height / pa.height)
        bits = H.hamming(H.crop_hashes(layouts[o:o + 1])[1][0], index[c])
        best_corr, hint = candidate.get((o, c), (None, None))
        diff = float(detail.crop_differences(np.array([o]), np.array([c]), None if hint is None else [hint])[0])
        together = o in group_of and group_of.get(c) == group_of[o]
        if together:
            stage = "found"
        elif best_corr is None:
            stage = "not a candidate"
        elif best_corr < I.CROP_SIMILARITY:
            stage = "correlation"
        elif diff > limit:
            stage = "check"
        else:
            stage = "grouping"
        rows.append({"copy": e.name, "kind": e.kind, "kept": [round(kept[0], 3), round(kept[1], 3)],
                     "stage": stage, "bits": int(bits.min()), "corr": None if best_corr is None else round(best_corr, 3),
                     "difference": round(diff, 3),
                     "layout_bits": int(H.hamming(layout_hash[o], layout_hash[c])),
                     "phash_bits": int(H.hamming(phash[o], phash[c]))})
    # Candidates between different pictures: what the check must hold apart.
    keep = correlation >= I.CROP_SIMILARITY
    owner, target, which = owner[keep], target[keep], which[keep]
    other = np.array([source_of.get(names[i], names[i]) != source_of.get(names[j], names[j])
                      for i, j in zip(owner.tolist(), target.tolist())], dtype=bool)
    diffs = (detail.crop_differences(owner[other], target[other], H.crop_kept(which[other])[1]) if other.any()
             else np.zeros(0))
    impostors = sorted(({"picture": names[i], "copy": names[j], "difference": round(float(d), 3)}
                        for i, j, d in zip(owner[other].tolist(), target[other].tolist(), diffs.tolist())),
                       key=lambda r: r["difference"])
    stages: dict[str, int] = defaultdict(int)
    for r in rows:
        stages[r["stage"]] += 1
    return {"stages": dict(stages), "crops": rows, "candidates": int(owner.size),
            "other_picture_candidates": impostors}


def print_explain(found: dict) -> None:
    print("stages:", json.dumps(found["stages"]))
    print(f"{'copy':34} {'kind':8} {'kept x':>6} {'kept y':>6} {'bits':>4} {'corr':>6} "
          f"{'diff':>6} {'lay':>4} {'ph':>4}  stage")
    for r in sorted(found["crops"], key=lambda r: (r["stage"], r["difference"])):
        corr = "-" if r["corr"] is None else f"{r['corr']:.3f}"
        print(f"{r['copy']:34} {r['kind']:8} {r['kept'][0]:6.3f} {r['kept'][1]:6.3f} {r['bits']:4d} {corr:>6} "
              f"{r['difference']:6.3f} {r['layout_bits']:4d} {r['phash_bits']:4d}  "
              f"{r['stage']}")
    print(f"crop candidates past the correlation: {found['candidates']}, of different pictures: "
          f"{len(found['other_picture_candidates'])}")
    for r in found["other_picture_candidates"][:30]:
        print(f"  {r['picture']:34} {r['copy']:34} {r['difference']:.3f}")


# ----- report -------------------------------------------------------------------------------------


def markdown(results: dict[str, dict], entries: list[Entry]) -> str:
    tools = list(results)
    head = "| injected (n) | issue | " + " | ".join(tools) + " |"
    lines = [head, "|---|---|" + "---:|" * len(tools)]
    for label in INJECTED:
        n = sum(1 for e in entries if e.label == label)
        cells = []
        for tool in tools:
            row = results[tool]["recall"].get(label)
            cells.append("–" if row is None or row["recall"] is None else f"{row['recall']:.3f}")
        lines.append(f"| {label} ({n}) | {ISSUE_OF[label]} | " + " | ".join(cells) + " |")
    lines += ["", "| false flags on clean images | n | " + " | ".join(tools) + " |", "|---|---:|" + "---:|" * len(tools)]
    issues = sorted({i for r in results.values() for i in r["false_flags"]})
    for issue in issues:
        n = next(r["false_flags"][issue]["n"] for r in results.values() if issue in r["false_flags"])
        cells = [f"{results[t]['false_flags'][issue]['rate']:.3f}" if issue in results[t]["false_flags"] else "–"
                 for t in tools]
        lines.append(f"| {issue} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "| groups | " + " | ".join(tools) + " |", "|---|" + "---:|" * len(tools)]
    for kind in ("near_duplicates", "exact_duplicates"):
        cells = []
        for t in tools:
            g = results[t]["groups"].get(kind)
            if g is None or g["pair_precision"] is None:
                cells.append("–")
            else:
                cells.append(f"{g['pair_precision']:.3f} ({g['groups']} groups, {g['mixed_groups']} mixed)")
        lines.append(f"| {kind} pair precision | " + " | ".join(cells) + " |")
    lines.append("| seconds | " + " | ".join(f"{results[t]['seconds']:.1f}" for t in tools) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=1500, help="clean originals before injection")
    parser.add_argument("--per-issue", type=int, default=90, help="images per injected label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--rebuild", action="store_true", help="build the set again even if cached")
    parser.add_argument("--skip", default="", help="comma-separated tools to leave out: cleanvision,imagededup")
    parser.add_argument("--imagededup-methods", default="PHash,DHash,AHash,WHash")
    parser.add_argument("--explain", action="store_true",
                        help="only say, per cropped copy, where the near-duplicate search loses it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.work / "images"
    labels = args.work / "labels.json"
    meta = {"originals": args.originals, "per_issue": args.per_issue, "seed": args.seed}
    meta_file = args.work / "meta.json"
    start = time.perf_counter()
    if args.rebuild or not labels.exists() or not meta_file.exists() or json.loads(meta_file.read_text()) != meta:
        entries = build_set(folder, args.originals, args.per_issue, args.seed)
        meta_file.write_text(json.dumps(meta))
    else:
        entries = [Entry(**e) for e in json.loads(labels.read_text())]
    built = time.perf_counter() - start
    print(f"set: {len(entries)} images ({sum(e.label == CLEAN for e in entries)} clean) in {built:.1f} s",
          file=sys.stderr)
    if args.explain:
        print_explain(explain_crops(args.work, folder, entries))
        return 0
    skip = set(filter(None, args.skip.split(",")))
    truncated = {e.name for e in entries if e.label == "truncated"}
    results: dict[str, dict] = {}
    results["rayproc"] = score(entries, run_rayproc(folder, {}))
    results["rayproc (cleanvision profile)"] = score(entries, run_rayproc(folder, {"issue_profile": "cleanvision"}))
    if "cleanvision" not in skip:
        results["cleanvision 0.3.7"] = score(entries, run_cleanvision(folder, truncated))
    if "imagededup" not in skip:
        for method in args.imagededup_methods.split(","):
            results[f"imagededup {method}"] = score(entries, run_imagededup(folder, method, truncated))
    table = markdown(results, entries)
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    from benchmarks.bench_analysis import source_commit

    OUT.write_text(json.dumps({"meta": {**meta, "images": len(entries), "commit": source_commit(),
                                        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                        "python": platform.python_version()},
                               "results": results, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
