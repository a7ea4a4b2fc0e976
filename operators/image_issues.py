"""Issue detection for analysis: cleanvision's issue types, scores and default thresholds.

Every issue has a score in [0, 1] where lower is worse, and an image has the
issue when its score is under the threshold, as in cleanvision 0.3.7 (see
``docs/cleanvision-parity.md`` for the formulas and where rayproc differs).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, ClassVar

import numpy as np
from PIL import Image, ImageFilter
from pydantic import Field

from operators import duplicates as D
from operators import hashing as H
from operators.analyse import ASPECT_RATIO, ENTROPY, GRAYSCALE, HEIGHT, WIDTH
from operators.base import (
    Finalized,
    ImageBatch,
    Operator,
    RecordTable,
    StrictParams,
    TaskType,
)

DARK = "dark"
LIGHT = "light"
BLURRY = "blurry"
LOW_INFORMATION = "low_information"
ODD_ASPECT_RATIO = "odd_aspect_ratio"
ODD_SIZE = "odd_size"
GRAYSCALE_ISSUE = "grayscale"
EXACT_DUPLICATES = "exact_duplicates"
NEAR_DUPLICATES = "near_duplicates"
ISSUE_TYPES = (DARK, LIGHT, BLURRY, LOW_INFORMATION, ODD_ASPECT_RATIO, ODD_SIZE, GRAYSCALE_ISSUE, EXACT_DUPLICATES,
               NEAR_DUPLICATES)

# Per-item raw properties this operator computes in the map stage.
BRIGHTNESS_P99 = "brightness_p99"
BRIGHTNESS_P05 = "brightness_p05"
EDGE_STD = "edge_std"
GRAY_HIST_STD = "gray_histogram_std"
PHASH = "phash"
PIXEL_DIGEST = "pixel_digest"
ISSUES = "issues"
SCORES = "issue_scores"
ISSUES_FILE = "issues.jsonl"
MAX_GROUPS_IN_RESULT = 100

_HSP = np.array([0.241, 0.691, 0.068], dtype=np.float32)


class ImageIssues(Operator):
    """Flags image issues, each with a score per image (lower is worse) and a threshold.

    Issue types and default thresholds follow cleanvision: ``dark`` (99th
    percentile of perceived brightness < 0.32), ``light`` (5th percentile > 0.95),
    ``blurry`` (edge strength of a 64-pixel grayscale preview, score < 0.29),
    ``low_information`` (entropy < 3 bits), ``odd_aspect_ratio`` (short side /
    long side < 0.35), ``odd_size`` (sqrt(area) far outside the dataset's
    interquartile range), ``grayscale`` (stored in a grayscale mode),
    ``exact_duplicates`` (identical decoded pixels) and ``near_duplicates``
    (perceptual hashes within ``near_duplicate_distance`` bits, grouped without
    comparing all pairs). Duplicates are reported as groups. Output:
    ``issues.jsonl`` (per image: its issues and scores) and, in ``result.issues``,
    counts per issue type and the duplicate groups.
    """

    name = "image_issues"
    task_type = TaskType.ANALYSE
    requires = ("image_features",)
    columns: ClassVar[tuple[str, ...]] = (BRIGHTNESS_P99, BRIGHTNESS_P05, EDGE_STD, GRAY_HIST_STD, PHASH,
                                          PIXEL_DIGEST)

    class Params(StrictParams):
        dark_threshold: Annotated[float, Field(ge=0, le=1)] = 0.32
        light_threshold: Annotated[float, Field(ge=0, le=1)] = 0.05
        blurry_threshold: Annotated[float, Field(ge=0, le=1)] = 0.29
        low_information_threshold: Annotated[float, Field(ge=0, le=1)] = 0.3
        odd_aspect_ratio_threshold: Annotated[float, Field(ge=0, le=1)] = 0.35
        odd_size_iqr_factor: Annotated[float, Field(gt=0, le=100)] = 3.0
        near_duplicate_distance: Annotated[int, Field(ge=0, le=16, description="Max differing pHash bits.")] = 4
        grayscale_by_content: bool = Field(
            False, description="Also flag colour-mode images whose three channels are equal.")

    def process_batch(self, batch: ImageBatch) -> dict[str, list]:
        per_pixel = np.sqrt((batch.pixels * batch.pixels) @ _HSP).reshape(len(batch), -1)
        p99, p05 = np.percentile(per_pixel, [99, 5], axis=1)
        edge, hist = zip(*(_edge_stats(p) for p in batch.previews), strict=True)
        hashes = H.perceptual_hash(batch.pixels)
        return {
            BRIGHTNESS_P99: p99, BRIGHTNESS_P05: p05, EDGE_STD: list(edge), GRAY_HIST_STD: list(hist),
            PHASH: [H.hash_to_hex(h) for h in hashes], PIXEL_DIGEST: list(batch.digests),
        }

    def finalize(self, table: RecordTable) -> Finalized:
        p = self.params
        n = len(table.ok_index)
        scores = {
            DARK: table.column(BRIGHTNESS_P99),
            LIGHT: 1.0 - table.column(BRIGHTNESS_P05),
            BLURRY: blurry_score(table.column(EDGE_STD), table.column(GRAY_HIST_STD)),
            LOW_INFORMATION: np.minimum(0.1 * table.column(ENTROPY), 1.0),
            ODD_ASPECT_RATIO: np.minimum(table.column(ASPECT_RATIO), 1.0 / np.maximum(table.column(ASPECT_RATIO),
                                                                                        1e-12)),
            ODD_SIZE: odd_size_score(np.sqrt(table.column(WIDTH) * table.column(HEIGHT)), p.odd_size_iqr_factor),
        }
        thresholds = {DARK: p.dark_threshold, LIGHT: p.light_threshold, BLURRY: p.blurry_threshold,
                      LOW_INFORMATION: p.low_information_threshold, ODD_ASPECT_RATIO: p.odd_aspect_ratio_threshold,
                      ODD_SIZE: 0.5}
        flags = {name: scores[name] < thresholds[name] for name in scores}
        modes = table.values("mode")
        gray_mode = np.array([m in ("L", "LA", "1", "I", "I;16", "F") for m in modes], dtype=bool)
        if p.grayscale_by_content:
            gray_mode |= np.array([bool(g) for g in table.values(GRAYSCALE)], dtype=bool)
        flags[GRAYSCALE_ISSUE] = gray_mode
        scores[GRAYSCALE_ISSUE] = (~gray_mode).astype(np.float64)

        keys = [r["item"] for r in table.ok]
        exact = D.exact_duplicate_groups(table.values(PIXEL_DIGEST))
        hashes = np.array([H.hex_to_hash(h) for h in table.values(PHASH)], dtype=np.uint64)
        near = [g for g in D.near_duplicate_groups(hashes, p.near_duplicate_distance) if g not in exact]
        for name, groups in ((EXACT_DUPLICATES, exact), (NEAR_DUPLICATES, near)):
            score = np.ones(n)
            for group in groups:
                score[group] = 1.0 / len(group)
            scores[name] = score
            flags[name] = score < 1.0

        rows, per_item_issues, per_item_scores = [], [], []
        for i in range(n):
            issues = [name for name in ISSUE_TYPES if flags[name][i]]
            item_scores = {name: round(float(scores[name][i]), 6) for name in ISSUE_TYPES}
            per_item_issues.append(issues)
            per_item_scores.append(item_scores)
            rows.append({"item": keys[i], ISSUES: issues, "scores": item_scores})
        table.set(ISSUES, per_item_issues)
        table.set(SCORES, per_item_scores)
        counts = {name: int(flags[name].sum()) for name in ISSUE_TYPES}
        summary = {
            "counts": counts,
            "thresholds": {**thresholds, "near_duplicate_distance": p.near_duplicate_distance},
            "exact_duplicate_groups": [[keys[i] for i in g] for g in exact[:MAX_GROUPS_IN_RESULT]],
            "near_duplicate_groups": [[keys[i] for i in g] for g in near[:MAX_GROUPS_IN_RESULT]],
            "exact_duplicate_group_count": len(exact),
            "near_duplicate_group_count": len(near),
            "images_with_issues": sum(1 for issues in per_item_issues if issues),
            "by_combination": dict(Counter(",".join(x) for x in per_item_issues if x).most_common(20)),
        }
        return Finalized(summary={"issues": summary}, files={ISSUES_FILE: rows})


def _edge_stats(preview: np.ndarray) -> tuple[float, float]:
    """cleanvision's blur inputs: std of Pillow's FIND_EDGES image and std of the 256-bin histogram counts."""
    gray = Image.fromarray(preview, mode="L")
    edges = np.asarray(gray.filter(ImageFilter.FIND_EDGES), dtype=np.float64)
    return float(edges.std()), float(np.std(gray.histogram()))


def blurry_score(edge_std: np.ndarray, hist_std: np.ndarray, normalizing_factor: float = 0.01,
                 color_threshold: float = 0.18) -> np.ndarray:
    """cleanvision's blur score: edge strength, lifted for images with a peaked histogram."""
    blur = 1.0 - np.exp(-edge_std * normalizing_factor)
    std = 1.0 - np.exp(-hist_std * normalizing_factor)
    std = np.where(std <= color_threshold, 0.0, std)
    return np.minimum(blur + std, 1.0)


def odd_size_score(size: np.ndarray, iqr_factor: float) -> np.ndarray:
    """How far sqrt(area) lies from the middle of [q1 - f*IQR, q3 + f*IQR], as 1 - distance / gap.

    Differs from cleanvision on purpose: the IQR is floored at 10% of the median, so a
    dataset where most images share one size does not flag every other size."""
    if size.size == 0:
        return size
    q1, q3, median = np.percentile(size, [25, 75, 50])
    iqr = max(q3 - q1, 0.1 * median)
    low, high = q1 - iqr_factor * iqr, q3 + iqr_factor * iqr
    gap = high - low
    return 1.0 - np.clip(np.abs(size - (low + high) / 2) / gap, 0, 1) if gap > 0 else np.ones_like(size)
