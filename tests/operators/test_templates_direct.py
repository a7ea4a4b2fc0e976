"""Each task type's operators on a dataset with known properties, run in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.dataset import ROOT_ANNOTATIONS, make_dataset, run_direct


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("ds") / "images"
    return folder, make_dataset(folder)


def _flagged(records: list[dict], issue: str) -> set[str]:
    return {r["item"] for r in records if issue in r.get("issues", [])}


def test_analysis_flags_each_known_issue(dataset, tmp_path: Path) -> None:
    folder, props = dataset
    result, files, records = run_direct(folder, "sys_data_analyse", [], tmp_path)
    assert _flagged(records, "dark") == {"dark.png"}
    assert _flagged(records, "light") == {"light.png"}
    assert _flagged(records, "odd_aspect_ratio") == {"wide.png"}
    assert _flagged(records, "grayscale") == {"gray.png"}
    assert _flagged(records, "exact_duplicates") == {"dup_a.png", "dup_b.png"}
    assert _flagged(records, "near_duplicates") == {"near_a.png", "near_b.jpg"}
    assert "blurry.png" in _flagged(records, "blurry")
    issues = result["issues"]
    assert issues["exact_duplicate_groups"] == [["dup_a.png", "dup_b.png"]]
    assert issues["near_duplicate_groups"] == [["near_a.png", "near_b.jpg"]]
    assert issues["counts"]["dark"] == 1
    assert {row["item"] for row in files["issues.jsonl"]} == {k for k, v in props.items() if v != "corrupt"}
    for name in ("brightness", "blur_score", "entropy", "saturation"):
        assert sum(result["features"][name]["histogram"]["counts"]) == len(props) - 1
    assert result["failures_by_reason"] == {"truncated": 1}


def test_analysis_box_statistics_from_a_manifest(dataset, tmp_path: Path) -> None:
    folder, _ = dataset
    result, _, _ = run_direct(folder, "sys_data_analyse", [], tmp_path, source=folder / ROOT_ANNOTATIONS)
    boxes = result["boxes"]
    assert boxes["total_boxes"] == 7 and boxes["images_with_boxes"] == 6
    assert boxes["boxes_per_label"] == {"cat": 3, "dog": 2, "bird": 1, "tail": 1}
    assert boxes["boxes_partly_outside_image"] == 1
    assert boxes["box_area_ratio"]["min"] == pytest.approx(600 / (96 * 72), abs=1e-6)


def test_cleaning_keeps_one_of_each_duplicate_and_drops_what_the_rules_say(dataset, tmp_path: Path) -> None:
    folder, props = dataset
    params = [{"id": "data_cleaning", "params": {"drop_near_duplicates": True, "drop_issues": ["dark"],
                                                 "output": "copy"}}]
    result, files, _ = run_direct(folder, "sys_data_cleaning", params, tmp_path)
    removed = {r["item"]: r["reason"] for r in files["removed.jsonl"]}
    assert removed == {
        "broken.png": "corrupt: truncated",
        "dark.png": "issue: dark",
        "dup_b.png": "exact_duplicate_of: dup_a.png",
        "near_b.jpg": "near_duplicate_of: near_a.png",
    }
    kept = {r["item"] for r in files["kept.jsonl"]}
    assert kept == set(props) - set(removed)
    assert result["cleaning"]["kept_count"] == len(kept)
    for name in kept:
        assert (tmp_path / "kept" / name).read_bytes() == (folder / name).read_bytes()


def test_validation_lists_findings_per_item(dataset, tmp_path: Path) -> None:
    folder, _ = dataset
    params = [{"id": "data_validation", "params": {"allowed_labels": ["cat", "dog", "tail"], "min_width": 50}}]
    result, files, _ = run_direct(folder, "sys_data_validation", params, tmp_path, source=folder / ROOT_ANNOTATIONS)
    findings = {r["item"]: sorted(f["code"] for f in r["findings"]) for r in files["findings.jsonl"]}
    assert findings["normal_0.png"] == ["partly_outside_image"]
    assert findings["normal_5.png"] == ["label_not_allowed", "label_not_allowed"]  # item label and box label
    assert findings["normal_1.png"] == []
    assert result["validation"]["findings_by_code"] == {"label_not_allowed": 2, "partly_outside_image": 1}


def test_validation_reports_unreadable_and_odd_files(dataset, tmp_path: Path) -> None:
    folder, _ = dataset
    params = [{"id": "data_validation", "params": {"min_width": 100, "max_file_size_bytes": 10_000}}]
    result, files, _ = run_direct(folder, "sys_data_validation", params, tmp_path)
    findings = {r["item"]: {f["code"] for f in r["findings"]} for r in files["findings.jsonl"]}
    assert findings["broken.png"] == {"truncated"}
    assert "too_small" in findings["normal_0.png"] and "too_small" not in findings["wide.png"]
    assert "file_too_large" in findings["wide.png"]
    assert result["validation"]["invalid_count"] == sum(1 for f in findings.values() if f)


@pytest.mark.parametrize(("params", "expected"), [
    ({"method": "random", "count": 4, "seed": 3}, 4),
    ({"method": "stratified", "count": 3, "seed": 1}, 3),
    ({"method": "threshold", "rules": [{"feature": "brightness", "op": ">", "value": 0.9}]}, 1),
    ({"method": "top_k", "count": 2, "feature": "brightness"}, 2),
    ({"method": "diversity", "count": 5, "seed": 2}, 5),
], ids=["random", "stratified", "threshold", "top_k", "diversity"])
def test_selection_methods(dataset, tmp_path: Path, params: dict, expected: int) -> None:
    folder, _ = dataset
    source = folder / ROOT_ANNOTATIONS if params["method"] == "stratified" else None
    spec = [{"id": "data_selection", "params": params}]
    result, files, _ = run_direct(folder, "sys_data_selection", spec, tmp_path / "a", source=source)
    again, files_again, _ = run_direct(folder, "sys_data_selection", spec, tmp_path / "b", source=source)
    selected = files["selected.jsonl"]
    assert len(selected) == expected == result["selection"]["selected_count"]
    assert selected == files_again["selected.jsonl"]  # seeded: reproducible
    assert all(row["selection_reason"] for row in selected)
    if params["method"] == "threshold":
        assert [r["item"] for r in selected] == ["light.png"]
    if params["method"] == "top_k":
        assert selected[0]["item"] == "light.png"
    if params["method"] == "stratified":
        assert sorted(r["label"] for r in selected) == ["bird", "cat", "dog"]


def test_augmentation_writes_reproducible_images_with_boxes(dataset, tmp_path: Path) -> None:
    folder, _ = dataset
    spec = [{"id": "data_augmentation", "params": {
        "copies": 2, "seed": 5, "steps": [{"name": "hflip", "probability": 1.0},
                                          {"name": "color_jitter", "probability": 0.5}]}}]
    result, files, _ = run_direct(folder, "sys_data_augmentation", spec, tmp_path / "a",
                                  source=folder / ROOT_ANNOTATIONS)
    _, files_b, _ = run_direct(folder, "sys_data_augmentation", spec, tmp_path / "b",
                               source=folder / ROOT_ANNOTATIONS)
    rows = files["augmented.jsonl"]
    assert len(rows) == 12 == result["augmentation"]["outputs"]
    assert rows == files_b["augmented.jsonl"]
    for row in rows:
        a, b = (tmp_path / "a" / row["image"]).read_bytes(), (tmp_path / "b" / row["image"]).read_bytes()
        assert a == b  # same seed, same bytes
    first = next(r for r in rows if r["source_item"] == "normal_1.png")
    assert first["boxes"] == [{"bbox": [96 - 10 - 30, 10, 30, 20], "label": "cat"}]  # flipped with the pixels
    flipped = np.asarray(Image.open(tmp_path / "a" / first["image"]).convert("RGB"))
    original = np.asarray(Image.open(folder / "normal_1.png").convert("RGB"))
    if result["augmentation"]["outputs"] and not (flipped == original[:, ::-1]).all():
        # colour jitter ran on this copy; the geometry must still be the mirror image
        assert flipped.shape == original.shape


def test_bad_params_name_the_field(dataset) -> None:
    from jobs.catalog import CatalogError, parse_task_type, resolve_operators
    from operators.registry import default_registry

    cases = [
        ("sys_data_selection", {"id": "data_selection", "params": {"count": 2, "ratio": 0.5}}, "params"),
        ("sys_data_selection", {"id": "data_selection", "params": {"method": "threshold"}}, "params"),
        ("sys_data_selection", {"id": "data_selection", "params": {
            "method": "threshold", "rules": [{"feature": "nope", "op": ">", "value": 1}]}}, "rules.0.feature"),
        ("sys_data_augmentation", {"id": "data_augmentation", "params": {"steps": [{"name": "melt"}]}},
         "steps.0.name"),
        ("sys_data_augmentation", {"id": "data_augmentation", "params": {
            "steps": [{"name": "rotate", "params": {"degrees": "x"}}]}}, "params"),
        ("sys_data_cleaning", {"id": "data_cleaning", "params": {"drop_issues": ["sleepy"]}}, "drop_issues.0"),
    ]
    for template, op, field in cases:
        with pytest.raises(CatalogError) as info:
            resolve_operators(parse_task_type(template), [op], default_registry())
        assert field in info.value.field, (template, info.value)
