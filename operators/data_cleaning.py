"""Data cleaning (``sys_data_cleaning``)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from operators import image_issues as I
from operators.analyse import BLUR_SCORE, BRIGHTNESS, ENTROPY, HEIGHT, WIDTH
from operators.base import (
    Finalized,
    Operator,
    PerItem,
    RecordTable,
    StrictParams,
    TaskType,
)
from operators.pass_on import input_image, pass_on_row
from operators.pipeline import BOXES, ERROR_CODE, ITEM, LABEL

REMOVED = "removed_reason"
KEPT_FILE = "kept.jsonl"
REMOVED_FILE = "removed.jsonl"
KEPT_DIR = "kept"

IssueName = Literal[I.DARK, I.LIGHT, I.BLURRY, I.LOW_INFORMATION, I.ODD_ASPECT_RATIO, I.ODD_SIZE, I.GRAYSCALE_ISSUE]


class DataCleaning(Operator):
    """Removes items by rules and reports every removal with its reason.

    Rules (each off unless set, except the first two): ``drop_corrupt`` (files
    that cannot be read), ``drop_exact_duplicates`` and ``drop_near_duplicates``
    (keep the first of each group in item order, remove the rest; near
    duplicates are grouped as the analysis groups them, by
    ``near_duplicate_profile``),
    ``drop_issues`` (any of the analysis issue types, with the analysis
    thresholds), and feature thresholds: ``min_blur_score``, ``min_brightness``,
    ``max_brightness``, ``min_entropy``, ``min_width``, ``min_height``,
    ``max_aspect_ratio`` (long side / short side). The first rule that matches
    names the reason. Output: ``kept.jsonl`` (the kept items, with labels and
    boxes: a manifest a next task can take as its source), ``removed.jsonl``
    (item, reason) and, with ``output: copy``, the kept files copied under ``kept/``.
    """

    name = "data_cleaning"
    task_type = TaskType.CLEANING
    requires = ("image_features", "image_issues")
    passes_on = KEPT_FILE

    class Params(StrictParams):
        drop_corrupt: bool = True
        drop_exact_duplicates: bool = True
        drop_near_duplicates: bool = False
        near_duplicate_distance: Annotated[int, Field(
            ge=0, le=16, description="Max differing hash bits (layout hash, or pHash for 'cleanvision').")] = 4
        near_duplicate_profile: I.IssueProfile = Field(
            I.RAYPROC, description="How near duplicates are grouped, as the analysis's issue_profile: "
                                   "'rayproc' (confirmed layout and detail matches) or 'cleanvision' (pHash).")
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
        ok = table.ok_index
        # Why each record is removed, as a rule and its argument (0: not removed); the text
        # is only built for the removed ones, when their lines are written.
        rule = np.zeros(len(table), dtype=np.int8)
        argument = np.zeros(len(table), dtype=np.int64)

        def remove(where: np.ndarray, kind: int, arg: int) -> None:
            """Apply a rule to the ok items in ``where`` that no earlier rule removed."""
            hit = ok[where & (rule[ok] == 0)]
            rule[hit], argument[hit] = kind, arg

        if p.drop_corrupt:
            unreadable = np.ones(len(table), dtype=bool)
            unreadable[ok] = False
            rule[unreadable] = _CORRUPT
        if p.drop_issues:
            has = np.zeros((len(ok), len(p.drop_issues)), dtype=bool)
            for j, issues in enumerate(table.iter_values(I.ISSUES)):
                has[j] = [issue in (issues or ()) for issue in p.drop_issues]
            for k in range(len(p.drop_issues)):
                remove(has[:, k], _ISSUE, k)
        for k, (threshold, feature, fails, _) in enumerate(self._checks()):
            if threshold is not None:
                remove(fails(table.column(feature), threshold), _THRESHOLD, k)
        if p.max_aspect_ratio is not None:
            w, h = table.column(WIDTH), table.column(HEIGHT)
            remove(np.maximum(w, h) / np.maximum(np.minimum(w, h), 1) > p.max_aspect_ratio, _ASPECT, 0)
        self._duplicates(table, rule, argument)

        removed = np.flatnonzero(rule)
        keep = rule[ok] == 0
        reason = functools.partial(self._reason, table, rule, argument)
        table.set(REMOVED, PerItem(len(removed), lambda k: reason(int(removed[k]))), index=removed)
        copies = _copies(table, ok[keep]) if p.output == "copy" else ()
        removed_rows = PerItem(len(removed), lambda k: {ITEM: table.value(ITEM, int(removed[k])),
                                                        "reason": reason(int(removed[k]))})
        by_reason: Counter[str] = Counter()
        for kind, count in enumerate(np.bincount(rule[removed], minlength=len(_CATEGORY)).tolist()):
            if count:
                by_reason[_CATEGORY[kind]] += count
        summary = {"kept_count": int(keep.sum()), "removed_count": len(removed),
                   "removed_by_reason": dict(sorted(by_reason.items())), "output": p.output}
        return Finalized(summary={"cleaning": summary},
                         files={KEPT_FILE: _kept_rows(table, keep), REMOVED_FILE: removed_rows}, copies=copies)

    def _checks(self) -> tuple:
        """The feature thresholds, in the order they are tried: (threshold, feature, fails, text)."""
        p = self.params
        return (
            (p.min_blur_score, BLUR_SCORE, np.less, "blur_score below"),
            (p.min_brightness, BRIGHTNESS, np.less, "brightness below"),
            (p.max_brightness, BRIGHTNESS, np.greater, "brightness above"),
            (p.min_entropy, ENTROPY, np.less, "entropy below"),
            (p.min_width, WIDTH, np.less, "width below"),
            (p.min_height, HEIGHT, np.less, "height below"),
        )

    def _reason(self, table: RecordTable, rule: np.ndarray, argument: np.ndarray, index: int) -> str:
        kind, arg = int(rule[index]), int(argument[index])
        if kind == _CORRUPT:
            return f"corrupt: {table.value(ERROR_CODE, index, 'unreadable')}"
        if kind == _ISSUE:
            return f"issue: {self.params.drop_issues[arg]}"
        if kind == _THRESHOLD:
            threshold, feature, _, text = self._checks()[arg]
            return f"threshold: {text} {threshold} ({table.value(feature, index)})"
        if kind == _ASPECT:
            w, h = table.value(WIDTH, index), table.value(HEIGHT, index)
            ratio = max(w, h) / max(min(w, h), 1)
            return f"threshold: aspect ratio {ratio:.3f} above {self.params.max_aspect_ratio}"
        return f"{_CATEGORY[kind]}: {table.value(ITEM, arg)}"

    def _duplicates(self, table: RecordTable, rule: np.ndarray, argument: np.ndarray) -> None:
        """Keep the first item of each duplicate group (item order is sorted paths: deterministic)."""
        p = self.params
        ok = table.ok_index
        groups = []
        if p.drop_exact_duplicates:
            groups += [(_EXACT, g) for g in I.confirmed_exact_groups(table)]
        if p.drop_near_duplicates:
            near = I.near_duplicate_groups(table, p.near_duplicate_profile, p.near_duplicate_distance)
            groups += [(_NEAR, g) for g in near]
        for kind, group in groups:
            survivors = [j for j in group if rule[ok[j]] == 0]
            if not survivors:
                continue
            first = ok[survivors[0]]
            for j in survivors[1:]:
                rule[ok[j]], argument[ok[j]] = kind, first


# Removal rules, in the order they are tried, and the word each reason starts with.
_CORRUPT, _ISSUE, _THRESHOLD, _ASPECT, _EXACT, _NEAR = range(1, 7)
_CATEGORY = ("", "corrupt", "issue", "threshold", "threshold", "exact_duplicate_of", "near_duplicate_of")


def _copies(table: RecordTable, kept: np.ndarray) -> list[tuple[str, str]]:
    """Each kept item and where its copy goes: ``kept/<key>``, an absolute path or URI's scheme and
    leading slash dropped (``/data/a.png`` -> ``kept/data/a.png``, ``s3://b/a.png`` -> ``kept/b/a.png``)."""
    items = (table.value(ITEM, i) for i in kept.tolist())
    return [(item, f"{KEPT_DIR}/{item.split('://', 1)[-1].lstrip('/')}") for item in items]


def _kept_rows(table: RecordTable, kept: np.ndarray) -> Iterator[dict]:
    """The kept items (``kept`` is a mask over the ok items) with their annotations, as a manifest."""
    columns = [table.iter_values(name, None) for name in (ITEM, LABEL, BOXES)]
    for keep, item, label, boxes in zip(kept, *columns, strict=True):
        if keep:
            yield pass_on_row(input_image(item, table.root), label, boxes, **{ITEM: item})
