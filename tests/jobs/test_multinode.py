"""Several Ray nodes on one machine: chunks spread across nodes and survive losing one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


def _run(tmp_path: Path, *flags: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.multinode", str(tmp_path), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_chunks_run_on_every_node(tmp_path: Path) -> None:
    report = _run(tmp_path)
    assert report["status"] == 2, report
    assert report["processed_count"] == 60 and report["failed_count"] == 0
    assert report["items"] == [f"img_{i:04d}.png" for i in range(60)]
    assert report["chunks"] == 30
    assert set(report["nodes"]) == {report["head_node_id"], *report["worker_node_ids"]}


def test_losing_a_worker_node_mid_run_loses_no_item(tmp_path: Path) -> None:
    report = _run(tmp_path, "--kill-worker")
    assert report["killed"] is True
    assert report["status"] == 2, report
    assert report["items"] == [f"img_{i:04d}.png" for i in range(60)]
