"""Data validation (``sys_data_validation``)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from operators import annotations as A
from operators.base import (
    Finalized,
    ImageBatch,
    Operator,
    PerItem,
    RecordTable,
    StrictParams,
    TaskType,
)
from operators.pipeline import ERROR_CODE, ERROR_MSG, ITEM

FINDINGS = "findings"
VALID = "valid"
FINDINGS_FILE = "findings.jsonl"

FILE_TOO_LARGE = "file_too_large"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
TOO_MANY_PIXELS = "too_many_pixels"
MISSING_LABEL = "missing_label"
MISSING_BOXES = "missing_boxes"
MALFORMED_BOX = "malformed_box"


class DataValidation(Operator):
    """Checks every item and lists what is wrong with it.

    Per item: the file exists and decodes fully (a truncated file is caught), its
    format agrees with its extension, its file size and dimensions are within the
    limits, its pixel count is under the decompression-bomb limit, and its
    annotations are well formed: a label in the allowed set (when one is given),
    boxes of positive size inside the image. A file that cannot be read is a
    finding too (its reason as the code). The output lists the findings per item
    (``findings.jsonl``) and ``result`` counts them per code.
    """

    name = "data_validation"
    task_type = TaskType.VALIDATION
    columns: ClassVar[tuple[str, ...]] = (VALID, FINDINGS)

    class Params(StrictParams):
        max_file_size_bytes: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
        min_width: Annotated[int, Field(ge=1)] = 1
        min_height: Annotated[int, Field(ge=1)] = 1
        max_width: Annotated[int, Field(ge=1)] | None = None
        max_height: Annotated[int, Field(ge=1)] | None = None
        max_pixels: Annotated[int, Field(ge=1, description="Decompression-bomb limit for this check.")] = 89_478_485
        allowed_labels: Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=10_000)] | None = None
        require_label: bool = False
        require_boxes: bool = False

    def process_batch(self, batch: ImageBatch) -> dict[str, list]:
        p = self.params
        allowed = set(p.allowed_labels) if p.allowed_labels is not None else None
        valid, findings = [], []
        for i, item in enumerate(batch.items):
            found: list[dict] = []
            w, h = int(batch.width[i]), int(batch.height[i])
            if batch.file_size[i] > p.max_file_size_bytes:
                found.append(_f(FILE_TOO_LARGE, f"{int(batch.file_size[i])} bytes > {p.max_file_size_bytes}"))
            if w < p.min_width or h < p.min_height:
                found.append(_f(TOO_SMALL, f"{w}x{h} is under {p.min_width}x{p.min_height}"))
            if (p.max_width and w > p.max_width) or (p.max_height and h > p.max_height):
                found.append(_f(TOO_LARGE, f"{w}x{h} is over {p.max_width or '-'}x{p.max_height or '-'}"))
            if w * h > p.max_pixels:
                found.append(_f(TOO_MANY_PIXELS, f"{w * h} pixels > {p.max_pixels}"))
            if item.label is None and p.require_label:
                found.append(_f(MISSING_LABEL, "the item has no label"))
            if item.label is not None and allowed is not None and item.label not in allowed:
                found.append(_f(A.LABEL_NOT_ALLOWED, f"label {item.label!r} is not an allowed label"))
            found.extend(self._box_findings(item.boxes, w, h, allowed))
            valid.append(not found)
            findings.append(found)
        return {VALID: valid, FINDINGS: findings}

    def _box_findings(self, raw_boxes: tuple, width: int, height: int, allowed: set[str] | None) -> list[dict]:
        if not raw_boxes:
            return [_f(MISSING_BOXES, "the item has no boxes")] if self.params.require_boxes else []
        boxes, labels, problems = A.parse_boxes(list(raw_boxes))
        out = [_f(MALFORMED_BOX, problem) for problem in problems]
        for problem in A.box_problems(boxes, labels, width, height, allowed):
            out.append(_f(problem["code"], problem["message"]))
        return out

    def finalize(self, table: RecordTable) -> Finalized:
        ok = np.zeros(len(table), dtype=bool)
        ok[table.ok_index] = True
        unreadable = np.flatnonzero(~ok)
        codes = table.iter_values(ERROR_CODE, "unreadable", every=True)
        messages = table.iter_values(ERROR_MSG, "", every=True)
        # An item that could not be read has one finding: why.
        reasons = [(code, message) for readable, code, message in zip(ok, codes, messages, strict=True)
                   if not readable]
        by_code = Counter(code for code, _ in reasons)
        invalid = len(reasons)
        for findings in table.iter_values(FINDINGS, []):
            by_code.update(f["code"] for f in findings)
            invalid += bool(findings)
        table.set(VALID, PerItem(len(reasons), lambda k: False), index=unreadable)
        table.set(FINDINGS, PerItem(len(reasons), lambda k: [_f(*reasons[k])]), index=unreadable)
        rows = ({ITEM: item, VALID: not findings, FINDINGS: findings} for item, findings in zip(
            table.iter_values(ITEM, every=True), table.iter_values(FINDINGS, [], every=True), strict=True))
        summary = {"valid_count": len(table) - invalid, "invalid_count": invalid,
                   "findings_by_code": dict(sorted(by_code.items()))}
        return Finalized(summary={"validation": summary}, files={FINDINGS_FILE: rows})


def _f(code: str, message: str) -> dict:
    return {"code": code, "message": message}
