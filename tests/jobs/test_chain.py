"""What a task passes on to the next: one manifest-line shape, declared by the operators, read back by
the runner's manifest reader; and malformed boxes failing their own item only."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.chain import chain_source, pass_on_file
from jobs.sources import list_items
from operators.registry import default_registry
from tests.support.dataset import run_direct
from tests.support.images import make_many

BOXES = {
    "img_0000.png": [{"bbox": [4, 6, 10, 8], "label": "eye"}],
    "img_0001.png": [{"bbox": [20, 2, 8, 12], "label": "ear"}, {"bbox": [1, 1, 5, 5], "label": "eye"}],
}


@pytest.fixture
def annotated(tmp_path: Path) -> Path:
    """Four 48x32 images in a manifest: two with boxes, one with a label only, one bare."""
    folder = tmp_path / "in"
    make_many(folder, 4)
    lines = [{"image": name, "label": "cat", "boxes": boxes} for name, boxes in BOXES.items()]
    lines += [{"image": "img_0002.png", "label": "dog"}, {"image": "img_0003.png"}]
    (folder / "data.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder / "data.jsonl"


def _upstream(out: Path, template: str, operator_params: list[dict], input_root: Path) -> SimpleNamespace:
    """The fields of a completed task's record that chaining reads."""
    return SimpleNamespace(task_id="up", output_dir=str(out), input_root=str(input_root),
                           template={"id": template, "operator_params": operator_params})


def _run(manifest: Path, out: Path, template: str, params: list[dict]) -> tuple[dict, SimpleNamespace]:
    from jobs.catalog import parse_task_type, resolve_operators

    result, files, _ = run_direct(manifest.parent, template, params, out, source=manifest)
    for name, rows in files.items():  # as the assembly writes them
        (out / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    specs = [s.to_json() for s in resolve_operators(parse_task_type(template), params, default_registry())]
    return result, _upstream(out, template, specs, manifest)


def _items(source: Path) -> dict[str, dict]:
    root, items = list_items(source)
    return {item["key"] if isinstance(item, dict) else item: item for item in items}


def test_each_passing_operator_names_its_file() -> None:
    registry = default_registry()
    assert {name: registry.get(name).passes_on for name in ("data_cleaning", "data_selection", "data_augmentation",
                                                             "image_features", "data_validation")} == {
        "data_cleaning": "kept.jsonl", "data_selection": "selected.jsonl", "data_augmentation": "augmented.jsonl",
        "image_features": None, "data_validation": None}
    assert pass_on_file({"operator_params": [{"id": "image_features"}, {"id": "data_selection"}]},
                        registry) == "selected.jsonl"
    assert pass_on_file({"operator_params": [{"id": "image_features"}]}, registry) is None


@pytest.mark.parametrize("template, params", [
    ("sys_data_cleaning", [{"id": "data_cleaning", "params": {"drop_exact_duplicates": False}}]),
    ("sys_data_selection", [{"id": "data_selection", "params": {"method": "random", "count": 4}}]),
], ids=["cleaning", "selection"])
def test_kept_and_selected_items_pass_on_with_their_labels_and_boxes(
        annotated: Path, tmp_path: Path, template: str, params: list[dict]) -> None:
    _, upstream = _run(annotated, tmp_path / "out", template, params)
    source = chain_source(upstream, tmp_path / "sources", default_registry())
    assert source.parent == tmp_path / "sources"
    folder = annotated.parent
    items = _items(source)
    assert sorted(items) == [str(folder / f"img_{i:04d}.png") for i in range(4)]
    for name, boxes in BOXES.items():
        assert items[str(folder / name)] == {"key": str(folder / name), "label": "cat", "boxes": boxes}
    assert items[str(folder / "img_0002.png")] == {"key": str(folder / "img_0002.png"), "label": "dog"}
    assert items[str(folder / "img_0003.png")] == str(folder / "img_0003.png")


def test_augmented_copies_pass_on_with_their_boxes_moved(annotated: Path, tmp_path: Path) -> None:
    params = [{"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]
    _, upstream = _run(annotated, tmp_path / "out", "sys_data_augmentation", params)
    items = _items(chain_source(upstream, tmp_path / "sources", default_registry()))
    flipped = {str(tmp_path / "out" / "augmented" / "img_0000__aug0.png"): [{"bbox": [48 - 4 - 10, 6, 10, 8],
                                                                              "label": "eye"}],
               str(tmp_path / "out" / "augmented" / "img_0001__aug0.png"): [
                   {"bbox": [48 - 20 - 8, 2, 8, 12], "label": "ear"}, {"bbox": [48 - 1 - 5, 1, 5, 5], "label": "eye"}]}
    for image, boxes in flipped.items():
        assert items[image]["boxes"] == boxes and items[image]["label"] == "cat"
        assert Path(image).is_file()
    assert len(items) == 4


def test_rows_kept_before_they_named_their_image_still_chain(annotated: Path, tmp_path: Path) -> None:
    from jobs.atomic import write_atomic
    from jobs.layout import RunLayout

    out = tmp_path / "out"
    layout = RunLayout(out)
    layout.state_dir.mkdir(parents=True)
    write_atomic(layout.manifest, json.dumps({"root": str(annotated.parent), "items": [], "chunk_size": 8}))
    (out / "kept.jsonl").write_text(json.dumps({"item": "img_0000.png", "boxes": BOXES["img_0000.png"]}) + "\n"
                                    + json.dumps({"label": "no image"}) + "\n")
    upstream = _upstream(out, "sys_data_cleaning", [{"id": "data_cleaning"}], annotated)
    root, items = list_items(chain_source(upstream, tmp_path / "sources", default_registry()))
    assert items[0] == {"key": str(annotated.parent / "img_0000.png"), "boxes": BOXES["img_0000.png"]}
    assert items[1]["error"] == "line 2 names no image (give 'image' as a path)"  # reported, not lost


def test_a_task_that_passes_nothing_on_hands_on_its_input(annotated: Path, tmp_path: Path) -> None:
    upstream = _upstream(tmp_path / "out", "sys_data_analyse", [{"id": "image_features"}], annotated)
    assert chain_source(upstream, tmp_path / "sources", default_registry()) == annotated


def test_a_malformed_box_fails_its_item_alone(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    make_many(folder, 4)
    lines = [
        {"image": "img_0000.png", "boxes": [{"bbox": [1, 2, 3, 4], "label": "ok"}]},
        {"image": "img_0001.png", "boxes": [{"bbox": [1, 2, 3], "label": "short"}]},  # three numbers
        {"image": "img_0002.png", "boxes": 5},  # not a list at all
        {"image": "img_0003.png", "boxes": [{"bbox": [1, 2, 3, 4]}]},  # no label
    ]
    manifest = folder / "data.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    params = [{"id": "data_augmentation", "params": {"copies": 1, "steps": [{"name": "hflip", "probability": 1}]}}]
    result, files, records = run_direct(folder, "sys_data_augmentation", params, tmp_path / "out", source=manifest)
    by_item = {r["item"]: r for r in records}
    assert by_item["img_0000.png"]["status"] == "ok"
    for name, fragment in (("img_0001.png", "list of 4 numbers"), ("img_0002.png", "boxes must be a list"),
                           ("img_0003.png", "missing 'label'")):
        assert by_item[name]["status"] == "failed" and by_item[name]["error_code"] == "bad_annotation", name
        assert fragment in by_item[name]["error_msg"], by_item[name]["error_msg"]
    assert result["failures_by_reason"] == {"bad_annotation": 3}
    assert [row["source_item"] for row in files["augmented.jsonl"]] == ["img_0000.png"]
    assert not (tmp_path / "out" / "augmented" / "img_0001__aug0.png").exists()
