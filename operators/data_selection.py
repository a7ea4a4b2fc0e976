"""Data selection (``sys_data_selection``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from operators import selection as S
from operators.analyse import FEATURE_COLUMNS
from operators.base import Finalized, Operator, PerItem, RecordTable, StrictParams, TaskType
from operators.pass_on import input_image, pass_on_row
from operators.pipeline import BOXES, ITEM, LABEL

SELECTED = "selected"
REASON = "selection_reason"
SELECTED_FILE = "selected.jsonl"
DEFAULT_RATIO = 0.1

Feature = Literal[FEATURE_COLUMNS]  # type: ignore[valid-type]


class Rule(StrictParams):
    feature: Feature
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float


class DataSelection(Operator):
    """Selects a subset of the items and says why each was chosen.

    Methods: ``random`` (seeded sample of ``count`` items or a ``ratio``),
    ``stratified`` (the same, in proportion to each label's share), ``threshold``
    (every item that passes all ``rules`` on computed features, e.g.
    ``blur_score > 100``), ``top_k`` (the ``count`` items with the largest or
    smallest ``feature``) and ``diversity`` (k-center greedy on the ``features``
    vectors: each pick is the item farthest from those already picked). Items that
    could not be read are never selected. Output: ``selected.jsonl`` with a reason
    per item and its labels and boxes (a manifest a next task can take as its source);
    ``result.selection`` counts them.
    """

    name = "data_selection"
    task_type = TaskType.SELECTION
    requires = ("image_features",)
    passes_on = SELECTED_FILE

    class Params(StrictParams):
        method: Literal["random", "stratified", "threshold", "top_k", "diversity"] = "random"
        count: Annotated[int, Field(ge=1, description="How many items to select.")] | None = None
        ratio: Annotated[float, Field(gt=0, le=1, description="Share of items to select when count is not "
                                                              "given (default 0.1).")] | None = None
        seed: int = 0
        rules: Annotated[list[Rule], Field(max_length=32)] = []
        feature: Feature = "blur_score"
        largest: bool = True
        features: Annotated[list[Feature], Field(min_length=1, max_length=32)] = [
            "brightness", "contrast", "blur_score", "aspect_ratio", "saturation", "entropy"]

        @model_validator(mode="after")
        def _size(self) -> DataSelection.Params:
            if self.count is not None and self.ratio is not None:
                raise ValueError("give count or ratio, not both")
            if self.method == "threshold" and not self.rules:
                raise ValueError("method 'threshold' needs at least one rule")
            return self

    columns: ClassVar[tuple[str, ...]] = ()

    def finalize(self, table: RecordTable) -> Finalized:
        p = self.params
        n = table.ok_count
        picked, reasons = self._pick(table, n)
        chosen = dict(zip(picked.tolist(), reasons, strict=True))
        table.set(SELECTED, PerItem(n, lambda i: i in chosen))
        table.set(REASON, PerItem(n, chosen.get))
        order = (picked if p.method == "diversity" else np.sort(picked)).tolist()
        records = table.ok_index[order].tolist() if order else []
        rows = PerItem(len(order), lambda k: _row(table, records[k], chosen[order[k]]))
        summary = {"method": p.method, "candidates": n, "selected_count": len(order)}
        return Finalized(summary={"selection": summary}, files={SELECTED_FILE: rows})

    def _pick(self, table: RecordTable, n: int) -> tuple[np.ndarray, list[str]]:
        p = self.params
        count, ratio = p.count, p.ratio if p.count is not None or p.ratio is not None else DEFAULT_RATIO
        if p.method == "random":
            idx = S.random_sample(n, count=count, ratio=ratio, seed=p.seed)
            return idx, [S.REASON_RANDOM] * len(idx)
        if p.method == "stratified":
            labels = table.values(LABEL)
            idx = S.stratified_sample(labels, count=count, ratio=ratio, seed=p.seed)
            return idx, S.stratified_reasons(labels, idx)
        if p.method == "threshold":
            values = {r.feature: table.column(r.feature) for r in p.rules}
            rules = [(r.feature, r.op, r.value) for r in p.rules]
            idx = S.threshold_filter(values, rules)
            return idx, S.threshold_reasons(values, rules, idx)
        k = count if count is not None else max(1, int(round(ratio * n)))  # type: ignore[operator]
        if p.method == "top_k":
            values = table.column(p.feature)
            idx = S.top_k(values, k, largest=p.largest)
            return idx, S.top_k_reasons(values, idx, largest=p.largest)
        matrix = np.column_stack([np.nan_to_num(table.column(f)) for f in p.features]) if n else np.zeros((0, 1))
        order, distance = S.k_center_greedy(matrix, min(k, n), seed=p.seed)
        return order, S.k_center_reasons(order, distance)


def _row(table: RecordTable, record: int, reason: str) -> dict:
    key = table.value(ITEM, record)
    return pass_on_row(input_image(key, table.root), table.value(LABEL, record),
                       table.value(BOXES, record), **{ITEM: key, REASON: reason})
