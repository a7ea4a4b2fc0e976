"""Run a list of operators over items: decode, compute, emit one record per item.

This is the unit of work ``jobs/`` ships to the cluster (one call per chunk), and
the same code runs a chunk in-process, so direct and distributed results agree.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from operators.base import ImageBatch, Operator, OperatorError
from operators.image_io import DEFAULT_MAX_PIXELS, ItemError, load_thumbnail

#: Record keys.
ITEM = "item"
STATUS = "status"
OK = "ok"
FAILED = "failed"
ERROR_CODE = "error_code"
ERROR_MSG = "error_msg"

THUMBNAIL_SIZE = 256


@dataclass
class Pipeline:
    operators: list[Operator]
    thumbnail_size: int = THUMBNAIL_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    _columns: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self._columns = [c for op in self.operators for c in op.columns]

    def process_items(self, root: str, items: Sequence[str]) -> list[dict]:
        """Process ``items`` (paths relative to ``root``) and return one record each, in order."""
        records: list[dict] = [{ITEM: key} for key in items]
        decoded, positions = [], []
        for pos, key in enumerate(items):
            try:
                decoded.append(load_thumbnail(os.path.join(root, key), self.thumbnail_size, self.max_pixels))
                positions.append(pos)
            except ItemError as exc:
                records[pos].update({STATUS: FAILED, ERROR_CODE: exc.code, ERROR_MSG: exc.message})
        if not decoded:
            return records
        batch = ImageBatch(
            keys=[items[p] for p in positions],
            pixels=np.stack([d.pixels for d in decoded]),
            width=np.array([d.width for d in decoded]),
            height=np.array([d.height for d in decoded]),
            file_size=np.array([d.file_size for d in decoded]),
            formats=[d.format for d in decoded],
        )
        columns: dict[str, np.ndarray] = {}
        for op in self.operators:
            try:
                out = op.process_batch(batch)
            except Exception as exc:  # an operator bug must fail the task with its name, not vanish
                raise OperatorError(f"operator {op.name!r} failed: {type(exc).__name__}: {exc}") from exc
            columns.update(out)
        for i, pos in enumerate(positions):
            rec = records[pos]
            rec[STATUS] = OK
            rec["format"] = batch.formats[i]
            for name in self._columns:
                rec[name] = _plain(columns[name][i])
        return records

    def summarize(self, records: Sequence[dict]) -> dict:
        """Combine records from every chunk into the task's ``result``."""
        ok = [r for r in records if r.get(STATUS) == OK]
        failed = [r for r in records if r.get(STATUS) == FAILED]
        columns = {name: np.array([r[name] for r in ok], dtype=np.float64) for name in self._columns}
        result: dict = {
            "item_count": len(records),
            "processed_count": len(ok),
            "failed_count": len(failed),
            "failures_by_reason": dict(sorted(Counter(r[ERROR_CODE] for r in failed).items())),
        }
        features: dict = {}
        for op in self.operators:
            summary = op.summarize(columns)
            features.update(summary.pop("features", {}))
            result.update(summary)
        result["features"] = features
        return result


def _plain(value: np.generic) -> int | float:
    """numpy scalar -> JSON scalar, rounded so output bytes do not depend on the node."""
    if isinstance(value, (np.integer, int)):
        return int(value)
    return round(float(value), 6)
