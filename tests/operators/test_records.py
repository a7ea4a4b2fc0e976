"""The columnar record table reads back exactly what was recorded, however it stores a column."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from operators.records import _MEMO_LIMIT, PerItem, RecordTable

MISSING = "<missing>"


def _records(n: int) -> list[dict]:
    """Every storage: typed, coded and packed text, JSON, mixed kinds; null, absent, NaN, big ints."""
    out = []
    for i in range(n):
        record: dict = {"item": f"dir/{i}.png", "status": "ok" if i % 7 else "failed"}
        if i % 3:
            record["mode"] = ("RGB", "L", None, "\udc80 lone surrogate")[i % 4]
        if i % 4:
            record["key"] = None if i % 9 == 0 else f"{i:032x}é"  # distinct: packed past the memo
        if i % 5:
            record["boxes"] = None if i % 11 == 0 else ([] if i % 2 else [{"bbox": [i, 1.5], "label": "猫"}])
        if i % 6:
            record["score"] = None if i % 13 == 0 else (float("nan") if i % 17 == 0 else i / 3)
        if i % 2:
            record["flag"] = None if i % 19 == 0 else bool(i % 3)
        if i % 8:
            record["mixed"] = [i, "x", 2.5, None, True, 2**70][i % 6]
        if i > n // 2:
            record["late"] = i
        out.append(record)
    return out


RECORDS = _records(3 * _MEMO_LIMIT)
NAMES = ["item", "status", "mode", "key", "boxes", "score", "flag", "mixed", "late", "never"]


def _same(a: list, b: list) -> bool:
    return json.dumps(a) == json.dumps(b)  # NaN equals NaN here, and bool stays apart from int


@pytest.fixture(scope="module")
def table() -> RecordTable:
    return RecordTable(iter(RECORDS))


@pytest.mark.parametrize("name", NAMES)
def test_every_read_gives_back_what_dict_get_would(table: RecordTable, name: str) -> None:
    every = [r.get(name, MISSING) for r in RECORDS]
    ok = [r.get(name) for r in RECORDS if r["status"] == "ok"]
    assert _same(table.all_values(name, MISSING), every)
    assert _same(list(table.iter_values(name, MISSING, every=True)), every)
    assert _same([table.value(name, i, MISSING) for i in range(len(RECORDS))], every)
    assert _same(table.values(name), ok)
    assert _same(list(table.iter_values(name)), ok)
    floats = [math.nan if v is None or isinstance(v, (str, list, dict)) else float(v) for v in ok]
    np.testing.assert_array_equal(table.column(name), np.array(floats))


def test_reads_are_fresh_objects(table: RecordTable) -> None:
    first, second = table.values("boxes"), table.values("boxes")
    j = first.index([])
    first[j].append("changed")
    assert second[j] == [] and table.values("boxes")[j] == []


@pytest.mark.parametrize("name", ["status", "mode", "key", "late", "item", "score"])
def test_groups_of_equal_values(table: RecordTable, name: str) -> None:
    expected: dict = {}  # grouped as a dict of the values groups them (no two NaNs are equal)
    for position, value in enumerate(table.values(name)):
        expected.setdefault(value, []).append(position)
    assert table.groups(name) == sorted((g for g in expected.values() if len(g) > 1), key=lambda g: g[0])


def test_fixed_width_digests_group_through_their_bytes() -> None:
    records = [{"status": "ok", "digest": f"{i % 1500:032x}"} for i in range(5000)]
    records[4000:4000] = [{"status": "failed"}] * 3
    table = RecordTable(records)
    expected: dict = {}
    for position, value in enumerate(table.values("digest")):
        expected.setdefault(value, []).append(position)
    assert table.groups("digest") == sorted((g for g in expected.values() if len(g) > 1), key=lambda g: g[0])


def test_set_fields_are_read_back_and_merged_into_their_records() -> None:
    table = RecordTable([{"status": "ok", "n": 1}, {"status": "failed"}, {"status": "ok", "n": 3}])
    calls = []
    table.set("issues", PerItem(2, lambda j: calls.append(j) or [f"issue{j}"]))
    assert calls == []  # nothing is built until it is read
    table.set("reason", ["bad file", "duplicate"], index=[1, 2])
    table.set("n", [30], index=[2])  # overrides the recorded value
    assert table.values("issues") == [["issue0"], ["issue1"]]
    assert table.all_values("reason") == [None, "bad file", "duplicate"]
    assert table.value("n", 2) == 30 and list(table.column("n")) == [1.0, 30.0]
    assert list(table.iter_added()) == [{"issues": ["issue0"]}, {"reason": "bad file"},
                                        {"issues": ["issue1"], "reason": "duplicate", "n": 30}]
    with pytest.raises(ValueError, match="twice"):
        table.set("x", [1, 2], index=[2, 2])
    with pytest.raises(ValueError, match="3 values for 2 records"):
        table.set("x", [1, 2, 3])
    with pytest.raises(ValueError, match="once fields have been set"):
        table.append({"status": "ok"})
