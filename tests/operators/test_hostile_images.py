"""Hostile images through the pipeline: each reported with a reason, memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jobs.chunk import process_chunk
from tests.support.hostile import write_hostile_set

ROOT = Path(__file__).resolve().parents[2]


def _outcome(record: dict) -> str:
    return "ok" if record["status"] == "ok" else record["error_code"]


def test_every_hostile_file_is_reported_with_its_reason(tmp_path: Path) -> None:
    expected = write_hostile_set(tmp_path)
    items = sorted(expected)
    records = process_chunk([], [{"id": "image_features", "params": {}}], str(tmp_path), items, [str(tmp_path)])
    assert [r["item"] for r in records] == items
    for record in records:
        assert _outcome(record) in expected[record["item"]], record
        if record["status"] == "failed":
            assert record["error_msg"]


_MEASURE = """
import json, resource, sys
from jobs.chunk import process_chunk
folder = sys.argv[1]
items = json.loads(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
records = process_chunk([], [{"id": "image_features", "params": {}}], folder, items, [folder])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "n": len(records)}))
"""


def test_decoding_the_hostile_set_keeps_memory_bounded(tmp_path: Path) -> None:
    expected = write_hostile_set(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path), json.dumps(sorted(expected))],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["n"] == len(expected)
    # The bomb alone would need 10.8 GB decoded; the whole set must cost well under 100 MB more than imports.
    assert m["after_kb"] - m["before_kb"] < 100 * 1024, m


def test_validation_reports_every_hostile_file(tmp_path: Path) -> None:
    from tests.support.dataset import run_direct

    folder = tmp_path / "hostile"
    expected = write_hostile_set(folder)
    result, files, _ = run_direct(folder, "sys_data_validation", [], tmp_path / "out")
    findings = {row["item"]: {f["code"] for f in row["findings"]} for row in files["findings.jsonl"]}
    assert set(findings) == set(expected)
    for item, outcomes in expected.items():
        if outcomes == {"ok"}:
            assert findings[item] == set(), item
        elif "ok" not in outcomes:
            assert findings[item] <= outcomes and findings[item], (item, findings[item])
    assert result["validation"]["invalid_count"] >= 5
