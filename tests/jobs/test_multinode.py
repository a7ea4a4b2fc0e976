"""Several Ray nodes on one machine, through the service: chunks spread across nodes, and a task that loses a
worker node mid-run completes with outputs equal, row for row, to the same task run without a fault."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray
N, CHUNK = 60, 2
ITEMS = [f"img_{i:04d}.png" for i in range(N)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both tasks on one three-node cluster, in a process of its own (the session holds its own Ray)."""
    workdir = tmp_path_factory.mktemp("multinode")
    proc = subprocess.run([sys.executable, "-m", "tests.support.multinode", str(workdir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=480)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_chunks_run_on_every_node(report: dict) -> None:
    ref = report["reference"]
    assert ref["status"] == 2, ref
    assert ref["processed_count"] == N and ref["failed_count"] == 0
    assert ref["items"] == ITEMS
    assert ref["chunks"] == N // CHUNK
    assert sorted(ref["work"]) == ITEMS  # with no fault, every item once
    assert set(ref["nodes"]) == {report["head_node_id"], *report["worker_node_ids"]}


def test_losing_a_worker_node_mid_run_completes_equal_to_an_uninterrupted_run(report: dict) -> None:
    lost, ref = report["node_loss"], report["reference"]
    assert lost["killed_at"] is not None and lost["killed_at"] < N, "the node must go mid-run"
    assert lost["status"] == 2, lost
    assert lost["runs"][-1][1] == "completed", lost["runs"]  # Ray retried the chunks, or the service the run
    assert (lost["processed_count"], lost["failed_count"]) == (N, 0)
    assert lost["items"] == ITEMS
    assert (lost["features"], lost["failures"], lost["result"]) == (ref["features"], ref["failures"], ref["result"])
    work = Counter(lost["work"])
    assert set(work) == set(ITEMS)
    # Only chunks in flight at the loss are redone: the runner keeps two per cluster CPU (three nodes of one CPU)
    # in flight, and one in its driver.
    in_flight = (2 * 3 + 1) * CHUNK
    assert sum(work.values()) - N <= in_flight, {k: v for k, v in work.items() if v > 1}
