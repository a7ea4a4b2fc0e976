"""rayproc's issue flags, with ``issue_profile: cleanvision``, against cleanvision's own, on the same images.

cleanvision is a test-only dependency; that profile mirrors its formulas and default
thresholds (docs/cleanvision-parity.md lists where rayproc deliberately differs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.dataset import make_dataset, run_direct

cleanvision = pytest.importorskip("cleanvision")

COMPARED = ["dark", "light", "blurry", "low_information", "odd_aspect_ratio", "grayscale", "exact_duplicates",
            "near_duplicates"]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    folder = tmp_path_factory.mktemp("parity") / "images"
    make_dataset(folder)
    (folder / "broken.png").unlink()  # cleanvision cannot skip a truncated file; rayproc reports it (tested elsewhere)
    lab = cleanvision.Imagelab(data_path=str(folder))
    # n_jobs=1: forking a pool inside a test process that already runs threads (gRPC, Ray) can deadlock.
    lab.find_issues({issue: {} for issue in COMPARED}, n_jobs=1)
    theirs = {issue: {Path(p).name for p in lab.issues.index[lab.issues[f"is_{issue}_issue"]]} for issue in COMPARED}
    out = tmp_path_factory.mktemp("ours")
    profile = [{"id": "image_issues", "params": {"issue_profile": "cleanvision"}}]
    _, _, records = run_direct(folder, "sys_data_analyse", profile, out)
    ours = {issue: {r["item"] for r in records if issue in r.get("issues", [])} for issue in COMPARED}
    shutil.rmtree(out)
    return theirs, ours


@pytest.mark.parametrize("issue", ["dark", "light", "blurry", "exact_duplicates", "near_duplicates",
                                   "odd_aspect_ratio", "grayscale"])
def test_same_images_flagged(both: tuple[dict, dict], issue: str) -> None:
    theirs, ours = both
    assert theirs[issue], f"the fixture should make cleanvision flag {issue}"
    assert ours[issue] == theirs[issue]


def test_low_information_agrees(both: tuple[dict, dict]) -> None:
    theirs, ours = both
    assert ours["low_information"] == theirs["low_information"]
