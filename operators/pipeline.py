"""Run a list of operators over items: decode, compute, emit one record per item; then finalize.

``process_items`` is the unit of work ``jobs/`` ships to the cluster (one call per
chunk); ``finalize`` runs once over every record. The same code runs a chunk
in-process, so direct and distributed results agree.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from operators.base import (
    ITEM_ERRORS,
    Finalized,
    ImageBatch,
    Item,
    Operator,
    OperatorError,
    RecordTable,
)
from operators.image_io import DEFAULT_MAX_PIXELS, ItemError, load_thumbnail

#: Record keys.
ITEM = "item"
STATUS = "status"
OK = "ok"
FAILED = "failed"
ERROR_CODE = "error_code"
ERROR_MSG = "error_msg"
LABEL = "label"
BOXES = "boxes"

#: Side of the square thumbnail features are computed on.
THUMBNAIL_SIZE = 128


@dataclass
class Pipeline:
    operators: list[Operator]
    thumbnail_size: int = THUMBNAIL_SIZE
    max_pixels: int = DEFAULT_MAX_PIXELS
    _columns: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self._columns = [c for op in self.operators for c in op.columns]

    def process_items(self, root: str, items: Sequence[str | dict], output_dir: str | None = None) -> list[dict]:
        """Process ``items`` (paths relative to ``root``, or ``{"key", "label", "boxes"}``) and
        return one record each, in order."""
        parsed = [Item.of(raw) for raw in items]
        records: list[dict] = [_record(item) for item in parsed]
        decoded, positions = [], []
        previews = any(op.needs_previews for op in self.operators)
        side = self.thumbnail_size
        # Each thumbnail is written in its place in the batch: stacking them afterwards would copy them all.
        thumbnails = np.empty((len(parsed), side, side, 3), dtype=np.uint8)
        for pos, item in enumerate(parsed):
            try:
                decoded.append(load_thumbnail(os.path.join(root, item.key), side, self.max_pixels,
                                              preview=previews, out=thumbnails[len(decoded)]))
                positions.append(pos)
            except ItemError as exc:
                records[pos].update({STATUS: FAILED, ERROR_CODE: exc.code, ERROR_MSG: exc.message})
        if not decoded:
            return records
        batch = ImageBatch(
            items=[parsed[p] for p in positions],
            paths=[os.path.join(root, parsed[p].key) for p in positions],
            rgb=thumbnails[:len(decoded)],
            width=np.array([d.width for d in decoded]),
            height=np.array([d.height for d in decoded]),
            file_size=np.array([d.file_size for d in decoded]),
            formats=[d.format for d in decoded],
            modes=[d.mode for d in decoded],
            digests=[d.digest for d in decoded],
            previews=[d.preview for d in decoded] if previews else [],
            output_dir=output_dir,
            wanted_statistics=tuple(dict.fromkeys(s for op in self.operators for s in op.statistics)),
        )
        columns: dict[str, Sequence] = {}
        item_errors: dict[int, ItemError] = {}
        for op in self.operators:
            try:
                out = dict(op.process_batch(batch))
            except Exception as exc:  # an operator bug must fail the task with its name, not vanish
                raise OperatorError(f"operator {op.name!r} failed: {type(exc).__name__}: {exc}") from exc
            for i, error in enumerate(out.pop(ITEM_ERRORS, ())):
                if error is not None:
                    item_errors.setdefault(i, error)  # the first operator to refuse an item says why
            columns.update(out)
        plain = {name: _plain_column(values) for name, values in columns.items()}
        for i, pos in enumerate(positions):
            rec = records[pos]
            if i in item_errors:
                rec.update({STATUS: FAILED, ERROR_CODE: item_errors[i].code, ERROR_MSG: item_errors[i].message})
                continue
            rec[STATUS] = OK
            rec["format"] = batch.formats[i]
            rec["mode"] = batch.modes[i]
            for name, values in plain.items():
                rec[name] = values[i]
        return records

    def finalize(self, records: RecordTable | Iterable[dict], *, root: str | None = None,
                 output_dir: str | None = None,
                 copies: list[tuple[str, str]] | None = None) -> tuple[dict, dict[str, Iterable[dict]]]:
        """Combine every chunk's records into the task's ``result`` and extra output files.

        ``records`` is a :class:`RecordTable` (the job streams its part files into one;
        it carries its own ``root`` and ``output_dir``) or the records themselves.
        Operators add per-item fields to the table, not to the records: see
        :meth:`RecordTable.iter_added`. Each file's rows are an iterable to read once,
        after this returns. The items operators ask to have copied into the output
        (:attr:`Finalized.copies`) are appended to ``copies``; an operator that asks when
        no list is given fails, so no copy is ever silently skipped."""
        if isinstance(records, RecordTable):
            table = records
        else:
            table = RecordTable(records, STATUS, OK, root=root, output_dir=output_dir)
        statuses = table.iter_values(STATUS, every=True)
        codes = table.iter_values(ERROR_CODE, every=True)
        by_reason = Counter(code for status, code in zip(statuses, codes, strict=True) if status == FAILED)
        result: dict = {
            "item_count": len(table),
            "processed_count": table.ok_count,
            "failed_count": sum(by_reason.values()),
            "failures_by_reason": dict(sorted(by_reason.items())),
        }
        features: dict = {}
        files: dict[str, Iterable[dict]] = {}
        for op in self.operators:
            try:
                done: Finalized = op.finalize(table)
            except Exception as exc:
                raise OperatorError(f"operator {op.name!r} failed to finalize: {type(exc).__name__}: {exc}") from exc
            summary = dict(done.summary)
            features.update(summary.pop("features", {}))
            result.update(summary)
            files.update({name: _rows_of(op, rows) for name, rows in done.files.items()})
            asked = list(done.copies)
            if asked and copies is None:
                raise OperatorError(f"operator {op.name!r} asks for items copied to the output, "
                                    "which this caller does not do")
            if asked:
                copies.extend(asked)
        if features:
            result["features"] = features
        return result, files


def _rows_of(op: Operator, rows: Iterable[dict]) -> Iterator[dict]:
    """``rows``, read as the file is written; a failure there is still the operator's to own."""
    try:
        yield from rows
    except Exception as exc:
        raise OperatorError(f"operator {op.name!r} failed to finalize: {type(exc).__name__}: {exc}") from exc


def _record(item: Item) -> dict:
    rec: dict = {ITEM: item.key}
    if item.label is not None:
        rec[LABEL] = item.label
    if item.boxes:
        rec[BOXES] = list(item.boxes)
    return rec


def _plain_column(values: Sequence) -> list:
    """A whole column as JSON values: numeric arrays convert in one call, anything else value by value."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        if values.dtype.kind == "f":
            return [round(v, 6) for v in values.astype(np.float64).tolist()]
        if values.dtype.kind in "iub":
            return values.tolist()
    return [_plain(v) for v in values]


def _plain(value: object) -> object:
    """numpy values -> JSON values, floats rounded so output bytes do not depend on the node."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
