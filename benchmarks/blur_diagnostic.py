"""Where the default blur score stands on the detection benchmark's set: which images it misses or flags, and
what each threshold would trade.

    python -m benchmarks.blur_diagnostic [--work /tmp/rayproc-bench-detection] [--threshold 0.68]

Reads the labelled set ``benchmarks.bench_detection`` built and cached under ``--work`` (run that first) and
scores its clean and blurred images exactly as the pipeline does (``load_thumbnail`` to the 128 px thumbnail,
then ``features.edge_sharpness`` with the thumbnail's enlargement of small images). Prints, as Markdown:

- recall per blur strength and the share of clean images flagged, for a sweep of thresholds;
- recall and false flags by kind of picture (photo, product shot, graphic) and size (under 128 px or not);
- the blurred images of the mildest strength the threshold misses and the clean images it flags, each with its
  score and an estimate of its edge width: ``sigma`` in thumbnail pixels of the Gaussian blur whose step would
  have the image's median steepness (the steepest one-pixel step of an edge over its whole rise, taken only at
  the steepest point of each edge, ``1 / (sigma sqrt(2 pi))``). A clean image wider than the blurred ones cannot
  be told apart from them by how sharp its edges are.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from operators import features as F
from operators.image_io import load_thumbnail
from operators.image_issues import BLURRY_THRESHOLDS, RAYPROC

BLURRED = ("blurry_k1.0", "blurry_k1.5", "blurry_k2.5")
SWEEP = (0.56, 0.60, 0.64, 0.68, 0.70, 0.72, 0.74, 0.76, 0.80, 0.85)
SIDE = 128


def edge_width(gray: np.ndarray, factor: int) -> float:
    """The blur sigma (thumbnail pixels, over ``factor`` for an enlarged small image) whose blurred step is as
    steep as this image's median edge; inf when it has no edge."""
    window = 7 * factor
    half = window // 2
    ratios = []
    for view in (gray[::2, :], gray[:, ::2].T):
        view = np.ascontiguousarray(view)
        step = cv2.copyMakeBorder(cv2.absdiff(view[:, 1:], view[:, :-1]), 0, 0, 0, 1, cv2.BORDER_CONSTANT, value=0)
        span = np.ones((1, 2 * half + 2), np.uint8)
        rise = cv2.subtract(cv2.dilate(view, span, anchor=(half, 0)), cv2.erode(view, span, anchor=(half, 0)))
        peak = cv2.dilate(step, np.ones((1, 2 * half + 1), np.uint8))
        floor = max(4, int(0.3 * int(view.max()) - 0.3 * int(view.min())))
        at = (step == peak) & (step > 0) & (rise >= floor)
        ratios.append(step[at].astype(np.float64) / rise[at])
    r = np.concatenate(ratios)
    if r.size < 16:
        return float("inf")
    return float(1.0 / (np.sqrt(2 * np.pi) * np.median(r)) / factor)


def score_set(work: Path) -> list[dict]:
    labels = json.loads((work / "labels.json").read_text())
    rows = [e for e in labels if e["label"] == "clean" or e["label"] in BLURRED]
    thumbs = np.empty((len(rows), SIDE, SIDE, 3), dtype=np.uint8)
    sizes = []
    for i, e in enumerate(rows):
        d = load_thumbnail(str(work / "images" / e["name"]), SIDE, preview=False, out=thumbs[i])
        sizes.append((d.width, d.height))
    dims = np.array(sizes)
    factors = F.upscale_factors(dims[:, 0], dims[:, 1], SIDE)
    scores = F.edge_sharpness(thumbs, factors)
    gray = F.Planes(thumbs).gray
    for i, e in enumerate(rows):
        e.update(score=float(scores[i]), width=int(dims[i, 0]), height=int(dims[i, 1]),
                 sigma=edge_width(gray[i], int(factors[i].max())))
    return rows


def report(rows: list[dict], threshold: float) -> str:
    score = np.array([r["score"] for r in rows])
    label = np.array([r["label"] for r in rows])
    clean = label == "clean"
    lines = ["| threshold | clean images flagged | " + " | ".join(f"recall {b[7:]}" for b in BLURRED) + " |",
             "|---:|---:|" + "---:|" * len(BLURRED)]
    for t in sorted({*SWEEP, threshold}):
        recall = " | ".join(f"{np.mean(score[label == b] < t):.3f}" for b in BLURRED)
        lines.append(f"| {t:.2f} | {np.mean(score[clean] < t):.3f} ({int(np.sum(score[clean] < t))}) | {recall} |")
    groups: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for r in rows:
        size = "small (<128 px)" if max(r["width"], r["height"]) < SIDE else "128 px or more"
        groups[(r["label"], r["kind"], size)].append(r["score"] < threshold)
    lines += ["", f"| label | kind | size | n | flagged at {threshold:.2f} |", "|---|---|---|---:|---:|"]
    for key in sorted(groups):
        lines.append(f"| {' | '.join(key)} | {len(groups[key])} | {np.mean(groups[key]):.3f} |")

    def listing(title: str, chosen: list[dict]) -> list[str]:
        out = ["", f"{title} ({len(chosen)}):", "", "| image | kind | size | score | edge width (sigma, px) |",
               "|---|---|---|---:|---:|"]
        out += [f"| {r['name']} | {r['kind']} | {r['width']}x{r['height']} | {r['score']:.3f} | {r['sigma']:.2f} |"
                for r in chosen]
        return out

    mild = [r for r in rows if r["label"] == BLURRED[0]]
    lines += listing(f"{BLURRED[0]} missed at {threshold:.2f}",
                     sorted((r for r in mild if r["score"] >= threshold), key=lambda r: -r["score"]))
    lines += listing(f"clean images flagged at {threshold:.2f}",
                     sorted((r for r in rows if r["label"] == "clean" and r["score"] < threshold),
                            key=lambda r: r["score"]))
    widths = np.array([r["sigma"] for r in mild])
    clean_widths = np.array([r["sigma"] for r in rows if r["label"] == "clean"])
    clean_widths = clean_widths[np.isfinite(clean_widths)]
    widths = widths[np.isfinite(widths)]
    lines += ["", f"Edge width of {BLURRED[0]} (images without edges left out), against the {clean_widths.size} "
                  "clean images':", ""]
    for name, q in (("median", 50), ("25th percentile", 25), ("10th percentile", 10)):
        at = float(np.percentile(widths, q))
        lines.append(f"- {name} sigma {at:.2f} px; clean images at least that wide: "
                     f"{np.mean(clean_widths >= at):.3f} ({int(np.sum(clean_widths >= at))})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rayproc-bench-detection"))
    parser.add_argument("--threshold", type=float, default=BLURRY_THRESHOLDS[RAYPROC])
    args = parser.parse_args(argv)
    if not (args.work / "labels.json").exists():
        parser.error(f"no labelled set under {args.work}: run benchmarks.bench_detection first")
    print(report(score_set(args.work), args.threshold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
