"""Every item's record of a task, held column by column, for the reduce stage.

The job driver feeds a :class:`RecordTable` one record at a time while it reads
the committed part files, so no per-item dict outlives its line: each field goes
to a column of its own kind. Booleans, integers and floats go to typed arrays
(1 or 8 bytes an item), with a byte an item marking null or absent values once
the first one turns up. Text (strings, and lists and objects such as boxes or
findings as their compact JSON) is held as 2-byte codes while a column has few
distinct values (statuses, formats, modes, labels), and packed as UTF-8 in one
buffer once it has many (item keys, digests); it becomes Python objects again
only when read. A column whose values mix kinds keeps them as plain Python
values, so a read always gives back exactly what was recorded.

Fields an operator sets in ``finalize`` stay apart from the records, as the
sequence it gave (often a :class:`PerItem` that builds each value on demand),
and are merged into each record's line when the job writes the outputs.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

# Column kinds.
_EMPTY, _BOOL, _INT, _FLOAT, _STR, _JSON, _OBJECT, _NULL = range(8)
_KIND_OF_TYPE = {bool: _BOOL, int: _INT, float: _FLOAT, str: _STR, list: _JSON, dict: _JSON, type(None): _NULL}
_TYPECODE = {_BOOL: "b", _INT: "q", _FLOAT: "d"}
_DTYPE = {_BOOL: np.int8, _INT: np.int64, _FLOAT: np.float64}

# Per-item states of a typed column (its ``state`` bytes).
_PRESENT, _NULLED, _ABSENT_STATE = 0, 1, 2

#: Distinct values a string column shares; past it a column of unique keys stops looking.
_MEMO_LIMIT = 1024
#: Values decoded at a time when a column is read lazily.
_BLOCK = 1024


class _Absent:
    """A record without the field (as opposed to one whose value is null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _num(value: object) -> float:
    if value is None or value is _ABSENT or isinstance(value, (str, list, dict)):
        return float("nan")
    return float(value)


class PerItem(Sequence):
    """A per-item field computed when each value is read, for :meth:`RecordTable.set` and
    ``Finalized.files``: ``PerItem(n, fn)[i] == fn(i)``. Nothing per item is held until
    the job writes that item's line."""

    __slots__ = ("_fn", "_length")

    def __init__(self, length: int, fn: Callable[[int], Any]) -> None:
        self._length = int(length)
        self._fn = fn

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._fn(i) for i in range(*index.indices(self._length))]
        index = int(index)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._fn(index)


class _Column:
    """One field over every record (see the module docstring for the kinds).

    Text (strings, and the JSON of lists and objects) starts as codes into a list of
    its distinct values; past ``_MEMO_LIMIT`` of them (item keys, digests) it is packed
    into one UTF-8 buffer with an end offset per record.
    """

    __slots__ = ("kind", "data", "state", "memo", "uniques", "blob", "size")

    def __init__(self) -> None:
        self.kind = _EMPTY
        self.data: Any = None  # typed values, text codes, packed text ends, or plain values
        self.state: bytearray | None = None  # typed, empty and packed kinds; None while every value is present
        self.memo: dict | None = None  # text value -> code, while coded
        self.uniques: list | None = None  # code -> text value (0: absent, 1: null), while coded
        self.blob: bytearray | None = None  # packed text
        self.size = 0

    # ----- building

    def pad(self, size: int) -> None:
        """Mark the records up to ``size`` that lack this field as absent."""
        missing = size - self.size
        if missing <= 0:
            return
        if self.kind == _OBJECT:
            self.data.extend(itertools.repeat(_ABSENT, missing))
        elif self.memo is not None:
            self.data.frombytes(bytes(2 * missing))  # code 0
        else:
            self._missing_state().extend(bytes([_ABSENT_STATE]) * missing)
            if self.blob is not None:
                self.data.extend(itertools.repeat(self.data[-1] if self.data else 0, missing))
            elif self.kind != _EMPTY:
                self.data.frombytes(bytes(self.data.itemsize * missing))
        self.size = size

    def append(self, value: object) -> None:
        kind = _KIND_OF_TYPE.get(type(value), _OBJECT)
        if kind != self.kind and self.kind != _OBJECT:
            if kind == _NULL:
                self._append_null()
                return
            self._become(kind if self.kind == _EMPTY else _OBJECT)
        if self.kind in _TYPECODE:
            try:
                self.data.append(value)
            except OverflowError:  # an integer past 64 bits
                self._become(_OBJECT)
                self.data.append(value)
            else:
                if self.state is not None:
                    self.state.append(_PRESENT)
        elif self.kind == _STR or self.kind == _JSON:
            if self.kind == _JSON:
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            self._append_text(value)
        else:
            self.data.append(value)
        self.size += 1

    def _append_text(self, text: str) -> None:
        if self.memo is not None:
            code = self.memo.get(text)
            if code is None:
                if len(self.uniques) < _MEMO_LIMIT:
                    code = self.memo[text] = len(self.uniques)
                    self.uniques.append(text)
                else:
                    self._pack()
            if code is not None:
                self.data.append(code)
                return
        self.blob += text.encode("utf-8", "surrogatepass")
        self.data.append(len(self.blob))
        if self.state is not None:
            self.state.append(_PRESENT)

    def _pack(self) -> None:
        """From codes to packed text: this column's values are mostly distinct."""
        codes, uniques = self.data, self.uniques
        encoded = [None if u is None or u is _ABSENT else u.encode("utf-8", "surrogatepass") for u in uniques]
        self.blob, self.data, self.memo, self.uniques = bytearray(), array("q"), None, None
        state = bytearray(len(codes))
        for i, code in enumerate(codes):
            if code > 1:
                self.blob += encoded[code]
            else:
                state[i] = _ABSENT_STATE if code == 0 else _NULLED
            self.data.append(len(self.blob))
        self.state = state if any(state) else None

    def _append_null(self) -> None:
        if self.kind == _OBJECT:
            self.data.append(None)
        elif self.memo is not None:
            self.data.append(1)
        else:
            self._missing_state().append(_NULLED)
            if self.blob is not None:
                self.data.append(len(self.blob))
            elif self.kind != _EMPTY:
                self.data.append(0)
        self.size += 1

    def _missing_state(self) -> bytearray:
        if self.state is None:
            self.state = bytearray(self.size)
        return self.state

    def _become(self, kind: int) -> None:
        """Switch storage: from empty to the first value's kind, or to plain values when kinds mix."""
        if kind == _OBJECT:
            self.data = self.take(np.arange(self.size, dtype=np.int64), _ABSENT)
            self.state = self.memo = self.uniques = self.blob = None
        elif kind in _TYPECODE:
            # ``state`` already marks the nulls and absences so far.
            self.data = array(_TYPECODE[kind], bytes(np.dtype(_DTYPE[kind]).itemsize * self.size))
        else:
            self.data = array("H", [1 if s == _NULLED else 0 for s in (self.state or b"")])
            self.state, self.memo, self.uniques = None, {}, [_ABSENT, None]
        self.kind = kind

    # ----- reading

    def take(self, indices: np.ndarray, default: object) -> list:
        """The values at ``indices`` (sorted record indices), ``default`` where the field is absent."""
        kind = self.kind
        if kind == _OBJECT:
            data = self.data
            rows = data[:] if len(indices) == self.size else [data[i] for i in indices.data]
            return rows if default is _ABSENT else [default if v is _ABSENT else v for v in rows]
        n = len(indices)
        if self.memo is not None:
            uniques = self.uniques
            rows = [uniques[c] for c in np.frombuffer(self.data, dtype=np.uint16)[indices].tolist()] if n else []
            if kind == _JSON:  # decoded at every read, so no two readers share a list
                rows = [json.loads(v) if isinstance(v, str) else v for v in rows]
            return rows if default is _ABSENT else [default if v is _ABSENT else v for v in rows]
        if self.blob is not None:
            ends = np.frombuffer(self.data, dtype=np.int64)
            stop = ends[indices]
            start = np.where(indices > 0, ends[np.maximum(indices - 1, 0)], 0)
            with memoryview(self.blob) as buffer:
                out = [str(buffer[a:b], "utf-8", "surrogatepass") for a, b in zip(start.tolist(), stop.tolist(), strict=True)]
            if kind == _JSON:  # a missing value's text is empty, and is set below
                out = [json.loads(v) if v else None for v in out]
        elif kind == _EMPTY:
            out = [None] * n
        elif n:
            values = np.frombuffer(self.data, dtype=_DTYPE[kind])[indices]
            out = (values.astype(bool) if kind == _BOOL else values).tolist()
        else:
            out = []
        if self.state is not None and n:
            state = np.frombuffer(self.state, dtype=np.uint8)[indices]
            for j in np.flatnonzero(state).tolist():
                out[j] = None if state[j] == _NULLED else default
        return out

    def get(self, index: int, default: object) -> object:
        """The value at one record index (as :meth:`take`, without building arrays)."""
        kind = self.kind
        if kind == _OBJECT:
            value = self.data[index]
        elif self.memo is not None:
            value = self.uniques[self.data[index]]
            if kind == _JSON and isinstance(value, str):
                value = json.loads(value)
        elif self.state is not None and self.state[index] != _PRESENT:
            value = None if self.state[index] == _NULLED else _ABSENT
        elif self.blob is not None:
            start = self.data[index - 1] if index else 0
            value = str(self.blob[start:self.data[index]], "utf-8", "surrogatepass")
            if kind == _JSON:
                value = json.loads(value)
        elif kind == _BOOL:
            value = bool(self.data[index])
        else:
            value = self.data[index]
        return default if value is _ABSENT else value

    def floats(self, indices: np.ndarray) -> np.ndarray:
        """The values at ``indices`` as float64, NaN where null, absent or not a number."""
        kind = self.kind
        if kind in _TYPECODE:
            if not len(indices):
                return np.zeros(0, dtype=np.float64)
            out = np.frombuffer(self.data, dtype=_DTYPE[kind])[indices].astype(np.float64, copy=False)
            if self.state is not None:
                out[np.frombuffer(self.state, dtype=np.uint8)[indices] != _PRESENT] = np.nan
            return out
        if kind == _OBJECT:
            return np.array([_num(v) for v in self.take(indices, _ABSENT)], dtype=np.float64)
        return np.full(len(indices), np.nan)

    def keys(self, indices: np.ndarray) -> np.ndarray | None:
        """Sortable keys that are equal exactly where the values at ``indices`` are, or None
        when this storage has none to offer (the caller compares the values themselves)."""
        if self.kind != _STR:
            return None
        if self.memo is not None:
            codes = np.frombuffer(self.data, dtype=np.uint16)[indices]
            return np.maximum(codes, 1)  # absent reads as None, as null does
        ends = np.frombuffer(self.data, dtype=np.int64)
        lengths = np.diff(ends, prepend=0)
        width = int(lengths.max()) if lengths.size else 0
        # Fixed-width bytes compare exactly only when every value has the same width and no NUL
        # (numpy pads with NULs), and none of the wanted values is missing.
        if (width == 0 or ((lengths != width) & (lengths != 0)).any() or (lengths[indices] != width).any()
                or (self.state is not None and np.frombuffer(self.state, dtype=np.uint8)[indices].any())
                or self.blob.find(b"\x00") >= 0):
            return None
        return np.frombuffer(self.blob, dtype=f"S{width}")[ends[indices] // width - 1]


class _Layer:
    """Values an operator set on the records at ``index`` (sorted; ``order`` maps back to its sequence)."""

    __slots__ = ("index", "values", "order")

    def __init__(self, index: np.ndarray, values: Sequence, order: np.ndarray | None) -> None:
        self.index = index
        self.values = values
        self.order = order

    def value(self, position: int) -> object:
        return self.values[position if self.order is None else int(self.order[position])]

    def find(self, record: int) -> int:
        position = bisect.bisect_left(self.index.data, record)
        return position if position < len(self.index) and self.index[position] == record else -1


class RecordTable:
    """Every item's record of a task, in item order, for :meth:`Operator.finalize`.

    Reads are over the items that decoded (``ok``, see :attr:`ok_index`) unless
    named otherwise: :meth:`column` as float64 (NaN where a value is missing or
    not a number), :meth:`values` as recorded (``default`` where a record has no
    such field, as ``dict.get``), :meth:`iter_values` a block at a time, and
    :meth:`groups` of equal values; :meth:`all_values` and :meth:`value` see every
    record, failed ones too. :meth:`set` adds a per-item field, read back by the
    same methods and written into each record's line with the outputs.
    """

    def __init__(self, records: Iterable[dict] = (), status_key: str = "status", ok_value: str = "ok", *,
                 root: str | None = None, output_dir: str | None = None) -> None:
        self.root = root  # the folder (or bucket prefix) item keys are relative to
        #: Where finalize reads an item's file: set by the runner when items are not on a local disk (a
        #: bucket) to a local path it makes on demand; by default ``root`` joined with the key.
        self.locate: Callable[[str], str] | None = None
        self.output_dir = output_dir  # where finalize may write files (kept copies)
        self._status_key = status_key
        self._ok_value = ok_value
        self._columns: dict[str, _Column] = {}
        self._size = 0
        self._ok = array("q")
        self._ok_index: np.ndarray | None = None
        self._added: dict[str, list[_Layer]] = {}
        self.extend(records)

    def item_path(self, key: str) -> str:
        """A local path finalize can open to read item ``key``'s file (see :attr:`locate`)."""
        if self.locate is not None:
            return self.locate(key)
        if self.root is None:
            raise ValueError("the table has no root: its items' files cannot be read")
        return os.path.join(self.root, key)

    # ----- building

    def extend(self, records: Iterable[dict]) -> None:
        """Add records in item order; each is copied into the columns, not kept."""
        if self._added:
            raise ValueError("records cannot be added once fields have been set")
        columns, status_key, ok_value = self._columns, self._status_key, self._ok_value
        index = self._size
        for record in records:
            for name, value in record.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = _Column()
                if column.size != index:
                    column.pad(index)
                column.append(value)
            if record.get(status_key) == ok_value:
                self._ok.append(index)
            index += 1
            self._size = index
        self._ok_index = None

    def append(self, record: dict) -> None:
        self.extend((record,))

    # ----- shape

    def __len__(self) -> int:
        return self._size

    @property
    def ok_index(self) -> np.ndarray:
        """Record indices of the items that decoded, ascending (int64)."""
        if self._ok_index is None:
            self._ok_index = np.array(self._ok, dtype=np.int64)
        return self._ok_index

    @property
    def ok_count(self) -> int:
        return len(self._ok)

    # ----- reading

    def column(self, name: str) -> np.ndarray:
        """``name`` over the ok items as float64; NaN where missing, null or not a number."""
        if name in self._added:
            return np.fromiter((_num(v) for v in self.iter_values(name)), dtype=np.float64, count=self.ok_count)
        column = self._column(name)
        return column.floats(self.ok_index) if column else np.full(self.ok_count, np.nan)

    def values(self, name: str, default: object = None) -> list:
        """``name`` over the ok items, as recorded; ``default`` where a record lacks it."""
        return self._read(name, self.ok_index, default)

    def all_values(self, name: str, default: object = None) -> list:
        """``name`` over every record, failed ones too."""
        return self._read(name, self._every(), default)

    def iter_values(self, name: str, default: object = None, *, every: bool = False) -> Iterator:
        """As :meth:`values` (or :meth:`all_values` with ``every``), a block at a time."""
        indices = self._every() if every else self.ok_index
        for start in range(0, len(indices), _BLOCK):
            yield from self._read(name, indices[start:start + _BLOCK], default)

    def value(self, name: str, index: int, default: object = None) -> object:
        """``name`` of the record at ``index`` (a record index, as in :attr:`ok_index`)."""
        if not 0 <= index < self._size:
            raise IndexError(index)
        for layer in reversed(self._added.get(name, ())):
            position = layer.find(index)
            if position >= 0:
                return layer.value(position)
        column = self._column(name)
        return column.get(index, default) if column else default

    def groups(self, name: str) -> list[list[int]]:
        """Positions among the ok items (as in :meth:`values`) that share a value of ``name``:
        groups of two or more, each ascending, ordered by their first position."""
        column = self._column(name)
        keys = column.keys(self.ok_index) if column is not None and name not in self._added else None
        if keys is None:
            by_value: dict = {}
            for position, value in enumerate(self.iter_values(name)):
                by_value.setdefault(value, []).append(position)
            found = [group for group in by_value.values() if len(group) > 1]
        else:  # sorting compact keys costs a few bytes an item, where a dict of values costs a hundred
            order = np.argsort(keys, kind="stable")
            ordered = keys[order]
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            sizes = np.diff(np.r_[starts, len(ordered)])
            shared = sizes > 1
            found = [order[a:a + k].tolist() for a, k in zip(starts[shared].tolist(), sizes[shared].tolist(), strict=True)]
        return sorted(found, key=lambda group: group[0])

    # ----- per-item fields added in finalize

    def set(self, name: str, values: Sequence, *, index: Sequence[int] | np.ndarray | None = None) -> None:
        """Set a per-item field on the ok items (``values`` aligned with :attr:`ok_index`), or
        on the records at ``index``. ``values`` is any sequence; a :class:`PerItem` builds each
        value only when it is read or written."""
        if index is None:
            where = self.ok_index
        else:
            where = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
            if where.size and (where.min() < 0 or where.max() >= self._size):
                raise IndexError(f"{name!r}: a record index is outside 0..{self._size - 1}")
        if not (hasattr(values, "__getitem__") and hasattr(values, "__len__")):
            values = list(values)
        if len(values) != len(where):
            raise ValueError(f"{name!r}: {len(values)} values for {len(where)} records")
        order = None
        if index is not None and where.size > 1 and not (np.diff(where) > 0).all():
            order = np.argsort(where, kind="stable")
            where = np.ascontiguousarray(where[order])
            if (np.diff(where) == 0).any():
                raise ValueError(f"{name!r}: a record index is given twice")
        self._added.setdefault(name, []).append(_Layer(where, values, order))

    def iter_added(self) -> Iterator[dict]:
        """The fields set on each record, one dict per record in record order (empty when none)."""
        cursors = [[name, layer, layer.index.data, len(layer.index), 0]
                   for name, layers in self._added.items() for layer in layers]
        for record in range(self._size):
            fields: dict = {}
            for cursor in cursors:
                position = cursor[4]
                if position < cursor[3] and cursor[2][position] == record:
                    # Later layers of one name come later in the list, so they win, as later sets should.
                    fields[cursor[0]] = cursor[1].value(position)
                    cursor[4] = position + 1
            yield fields

    # ----- internals

    def _every(self) -> np.ndarray:
        return np.arange(self._size, dtype=np.int64)

    def _column(self, name: str) -> _Column | None:
        column = self._columns.get(name)
        if column is not None and column.size < self._size:
            column.pad(self._size)
        return column

    def _read(self, name: str, indices: np.ndarray, default: object) -> list:
        column = self._column(name)
        out = column.take(indices, default) if column else [default] * len(indices)
        if not len(indices):
            return out
        for layer in self._added.get(name, ()):
            lo, hi = np.searchsorted(layer.index, [indices[0], indices[-1] + 1]).tolist()
            if lo == hi:
                continue
            part = layer.index[lo:hi]
            if len(part) == len(indices) and np.array_equal(part, indices):
                out = [layer.value(p) for p in range(lo, hi)]
                continue
            position = np.searchsorted(indices, part)
            for k in np.flatnonzero(indices[position] == part).tolist():
                out[int(position[k])] = layer.value(lo + k)
        return out
