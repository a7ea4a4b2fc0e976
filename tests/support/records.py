"""Synthetic map-stage records, as chunks commit them, for testing a task's assembly without images.

Every field any operator's ``finalize`` reads is there, with the cases that make
outputs differ: failed items, labels (one not ASCII), boxes (one partly outside
its image), exact and near duplicates, dark, tiny and very wide images,
grayscale modes, validation findings, augmented copies, and a field a plugin
might add whose values mix kinds, are null, NaN or absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

LABELS = ("cat", "dog", "bird", "猫")
FAILURES = (("truncated", "image file is truncated"), ("not_an_image", "cannot identify image file"),
            ("decode_error", "broken data stream"))

_FEATURES = {"id": "image_features", "params": {"histogram_bins": 4}}
_ISSUES = {"id": "image_issues", "params": {
    "issue_profile": "cleanvision", "dark_threshold": 0.32, "light_threshold": 0.05, "blurry_threshold": 0.29, "low_information_threshold": 0.3,
    "odd_aspect_ratio_threshold": 0.35, "odd_size_iqr_factor": 3.0, "near_duplicate_distance": 4}}

#: Operator specs per case, in pipeline order, with every param the outputs depend on given, so a
#: changed default does not change them. Each case takes its operators' finalize down its branches.
CASES: dict[str, list[dict]] = {
    "analyse": [_FEATURES, _ISSUES, {"id": "box_features", "params": {"histogram_bins": 4}}],
    "cleaning": [_FEATURES, _ISSUES, {"id": "data_cleaning", "params": {
        "drop_corrupt": True, "drop_exact_duplicates": True, "drop_near_duplicates": True,
        "near_duplicate_distance": 4, "near_duplicate_profile": "cleanvision", "drop_issues": ["dark"], "min_width": 40, "min_blur_score": 30.0,
        "max_aspect_ratio": 8.0}}],
    "validation": [{"id": "data_validation", "params": {}}],
    "augmentation": [{"id": "data_augmentation", "params": {}}],
    "selection_stratified": [_FEATURES, {"id": "data_selection", "params": {
        "method": "stratified", "ratio": 0.2, "seed": 4}}],
    "selection_threshold": [_FEATURES, {"id": "data_selection", "params": {
        "method": "threshold", "rules": [{"feature": "brightness", "op": ">", "value": 0.6}]}}],
    "selection_top_k": [_FEATURES, {"id": "data_selection", "params": {
        "method": "top_k", "count": 7, "feature": "entropy", "largest": False}}],
    "selection_diversity": [_FEATURES, {"id": "data_selection", "params": {"method": "diversity", "count": 9,
                                                                             "seed": 2}}],
}


def _hex(rng: np.random.Generator, digits: int) -> str:
    return "".join(f"{int(v):02x}" for v in rng.integers(0, 256, digits // 2))


def synthetic_records(n: int, seed: int = 0) -> Iterator[dict]:
    """``n`` records in item order, the same for the same ``n`` and ``seed``; every case occurs in
    the first 24."""
    rng = np.random.default_rng(seed)
    previous: dict | None = None
    for i in range(n):
        key = f"set{i % 5}/img_{i:06d}.png"
        label = LABELS[i % len(LABELS)] if i % 5 else None
        boxes = None
        if i % 3 == 0:
            boxes = [{"bbox": [10, 12, 30, 20], "label": "eye"}]
            if i % 9 == 0:
                boxes.append({"bbox": [600, 450, 80, 60], "label": "tail"})  # partly outside 640x480
        if i % 13 == 7:
            code, message = FAILURES[i % len(FAILURES)]
            record = {"item": key, "status": "failed", "error_code": code, "error_msg": message}
            if label is not None:
                record["label"] = label
            yield record
            continue
        width, height = (640, 480)
        if i % 17 == 3:
            width, height = 4000, 100
        elif i % 19 == 4:
            width, height = 32, 24
        mode = "L" if i % 7 == 2 else ("RGBA" if i % 11 == 1 else "RGB")
        brightness = float(rng.uniform(0.02, 0.95))
        record = {
            "item": key, "status": "ok", "format": "JPEG" if i % 4 == 0 else "PNG", "mode": mode,
            "width": width, "height": height, "aspect_ratio": round(width / height, 6),
            "file_size": int(rng.integers(2_000, 900_000)), "brightness": round(brightness, 6),
            "contrast": round(float(rng.uniform(0, 0.4)), 6), "blur_score": round(float(rng.gamma(2, 60)), 6),
            "saturation": round(float(rng.uniform(0, 1)), 6), "colourfulness": round(float(rng.uniform(0, 90)), 6),
            "entropy": round(float(rng.uniform(1.5, 7.9)), 6), "grayscale": mode == "L",
            "box_count": len(boxes or ()), "brightness_p99": round(min(1.0, brightness * 1.6), 6),
            "brightness_p05": round(brightness * 0.3, 6), "edge_std": round(float(rng.uniform(2, 80)), 6),
            "gray_histogram_std": round(float(rng.uniform(5, 400)), 6), "phash": _hex(rng, 16),
            "pixel_digest": _hex(rng, 32),
            "valid": i % 5 != 4,
            "findings": [] if i % 5 != 4 else [{"code": "too_small", "message": f"{width}x{height} is under 50x50"}],
            "augmented": [{"image": f"augmented/{key[:-4]}__aug{k}.png", "boxes": boxes or [],
                           "boxes_dropped": (i + k) % 2 if boxes else 0} for k in range(2)],
        }
        if i % 7 == 0:
            record["note"] = None if i % 2 else ("checked" if i % 3 else 3)
        if i % 19 == 0:
            record["extra_score"] = float("nan") if i % 38 == 0 else 0.5
        if label is not None:
            record["label"] = label
        if boxes is not None:
            record["boxes"] = boxes
        if previous is not None and i % 23 == 9:  # the same pixels as the item before
            record["pixel_digest"], record["phash"] = previous["pixel_digest"], previous["phash"]
        elif previous is not None and i % 29 == 12:  # a re-encoded copy: other pixels, a hash two bits off
            record["phash"] = f"{int(previous['phash'], 16) ^ 0b101:016x}"
        previous = record
        yield record
