"""Data cleaning (``sys_data_cleaning``)."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from operators import duplicates as D
from operators import hashing as H
from operators import image_issues as I
from operators.analyse import BLUR_SCORE, BRIGHTNESS, ENTROPY, HEIGHT, WIDTH
from operators.base import (
    Finalized,
    Operator,
    OperatorError,
    RecordTable,
    StrictParams,
    TaskType,
)

REMOVED = "removed_reason"
KEPT_FILE = "kept.jsonl"
REMOVED_FILE = "removed.jsonl"
KEPT_DIR = "kept"

IssueName = Literal[I.DARK, I.LIGHT, I.BLURRY, I.LOW_INFORMATION, I.ODD_ASPECT_RATIO, I.ODD_SIZE, I.GRAYSCALE_ISSUE]


class DataCleaning(Operator):
    """Removes items by rules and reports every removal with its reason.

    Rules (each off unless set, except the first two): ``drop_corrupt`` (files
    that cannot be read), ``drop_exact_duplicates`` and ``drop_near_duplicates``
    (keep the first of each group in item order, remove the rest),
    ``drop_issues`` (any of the analysis issue types, with the analysis
    thresholds), and feature thresholds: ``min_blur_score``, ``min_brightness``,
    ``max_brightness``, ``min_entropy``, ``min_width``, ``min_height``,
    ``max_aspect_ratio`` (long side / short side). The first rule that matches
    names the reason. Output: ``kept.jsonl`` (the kept items, with labels and
    boxes), ``removed.jsonl`` (item, reason) and, with ``output: copy``, the kept
    files copied under ``kept/``.
    """

    name = "data_cleaning"
    task_type = TaskType.CLEANING
    requires = ("image_features", "image_issues")

    class Params(StrictParams):
        drop_corrupt: bool = True
        drop_exact_duplicates: bool = True
        drop_near_duplicates: bool = False
        near_duplicate_distance: Annotated[int, Field(ge=0, le=16, description="Max differing pHash bits.")] = 4
        drop_issues: Annotated[list[IssueName], Field(max_length=7)] = []
        min_blur_score: Annotated[float, Field(ge=0)] | None = None
        min_brightness: Annotated[float, Field(ge=0, le=1)] | None = None
        max_brightness: Annotated[float, Field(ge=0, le=1)] | None = None
        min_entropy: Annotated[float, Field(ge=0)] | None = None
        min_width: Annotated[int, Field(ge=1)] | None = None
        min_height: Annotated[int, Field(ge=1)] | None = None
        max_aspect_ratio: Annotated[float, Field(ge=1)] | None = None
        output: Literal["reference", "copy"] = "reference"

    def finalize(self, table: RecordTable) -> Finalized:
        p = self.params
        reasons: dict[int, str] = {}  # record index -> reason
        if p.drop_corrupt:
            for i, record in enumerate(table.records):
                if record.get("status") != "ok":
                    reasons[i] = f"corrupt: {record.get('error_code', 'unreadable')}"
        ok = table.ok_index
        keys = [table.records[i]["item"] for i in ok]
        issues_of = table.values(I.ISSUES)
        for j, record_index in enumerate(ok):
            if record_index in reasons:
                continue
            reason = self._rule(table.records[record_index], issues_of[j] or [])
            if reason:
                reasons[record_index] = reason
        self._duplicates(table, keys, reasons)

        kept = [r for i, r in enumerate(table.records) if i not in reasons and r.get("status") == "ok"]
        removed = [{"item": table.records[i]["item"], "reason": reasons[i]} for i in sorted(reasons)]
        for i, reason in reasons.items():
            table.records[i][REMOVED] = reason
        if p.output == "copy":
            self._copy(table, kept)
        kept_rows = [{k: r[k] for k in ("item", "label", "boxes") if k in r} for r in kept]
        by_reason = Counter(r["reason"].split(":")[0] for r in removed)
        summary = {"kept_count": len(kept), "removed_count": len(removed),
                   "removed_by_reason": dict(sorted(by_reason.items())), "output": p.output}
        return Finalized(summary={"cleaning": summary}, files={KEPT_FILE: kept_rows, REMOVED_FILE: removed})

    def _rule(self, record: dict, issues: list[str]) -> str | None:
        p = self.params
        for issue in p.drop_issues:
            if issue in issues:
                return f"issue: {issue}"
        checks = (
            (p.min_blur_score, BLUR_SCORE, lambda v, t: v < t, "blur_score below"),
            (p.min_brightness, BRIGHTNESS, lambda v, t: v < t, "brightness below"),
            (p.max_brightness, BRIGHTNESS, lambda v, t: v > t, "brightness above"),
            (p.min_entropy, ENTROPY, lambda v, t: v < t, "entropy below"),
            (p.min_width, WIDTH, lambda v, t: v < t, "width below"),
            (p.min_height, HEIGHT, lambda v, t: v < t, "height below"),
        )
        for threshold, feature, fails, text in checks:
            if threshold is not None and fails(record[feature], threshold):
                return f"threshold: {text} {threshold} ({record[feature]})"
        if p.max_aspect_ratio is not None:
            w, h = record[WIDTH], record[HEIGHT]
            ratio = max(w, h) / max(min(w, h), 1)
            if ratio > p.max_aspect_ratio:
                return f"threshold: aspect ratio {ratio:.3f} above {p.max_aspect_ratio}"
        return None

    def _duplicates(self, table: RecordTable, keys: list[str], reasons: dict[int, str]) -> None:
        """Keep the first item of each duplicate group (item order is sorted paths: deterministic)."""
        p = self.params
        ok = table.ok_index
        groups = []
        if p.drop_exact_duplicates:
            groups += [("exact_duplicate_of", g) for g in D.exact_duplicate_groups(table.values(I.PIXEL_DIGEST))]
        if p.drop_near_duplicates:
            hashes = np.array([H.hex_to_hash(h) for h in table.values(I.PHASH)], dtype=np.uint64)
            groups += [("near_duplicate_of", g) for g in D.near_duplicate_groups(hashes, p.near_duplicate_distance)]
        for kind, group in groups:
            survivors = [j for j in group if ok[j] not in reasons]
            if not survivors:
                continue
            first = survivors[0]
            for j in survivors[1:]:
                reasons[ok[j]] = f"{kind}: {keys[first]}"

    def _copy(self, table: RecordTable, kept: list[dict]) -> None:
        if table.root is None or table.output_dir is None:
            raise OperatorError("copying kept items needs the input and output folders")
        for record in kept:
            source = os.path.join(table.root, record["item"])
            rel = record["item"].lstrip("/")
            target = os.path.join(table.output_dir, KEPT_DIR, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target)
