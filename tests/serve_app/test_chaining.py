"""Tasks feeding tasks, and operator failures, end to end on the real local Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray

WIDTH = 48  # make_many's images are 48x32
BOXES = {
    "img_0000.png": [{"bbox": [4, 6, 10, 8], "label": "eye"}],
    "img_0001.png": [{"bbox": [20, 2, 8, 12], "label": "ear"}, {"bbox": [1, 1, 5, 5], "label": "eye"}],
    "img_0002.png": [{"bbox": [30, 10, 12, 12], "label": "nose"}],
}


def _flipped(boxes: list[dict]) -> list[dict]:
    return [{"bbox": [WIDTH - b["bbox"][0] - b["bbox"][2], *b["bbox"][1:]], "label": b["label"]} for b in boxes]


def _create(service: Service, source: dict, template: dict, **body) -> str:
    r = service.client.post(service.tasks(), json={"name": template["id"], "data_source": source,
                                                   "template": template, **body})
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def test_a_selection_passes_its_boxes_to_an_augmentation(service: Service, folder: Path) -> None:
    make_many(folder, 5)
    lines = [{"image": name, "label": "cat", "boxes": boxes} for name, boxes in BOXES.items()]
    lines += [{"image": "img_0003.png", "label": "dog"},
              {"image": "img_0004.png", "label": "dog", "boxes": [{"bbox": [1, 2, 3], "label": "short"}]}]
    manifest = folder / "annotated.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    selection_id = _create(service, {"type": "OBS", "source": str(manifest)},
                           {"id": "sys_data_selection",
                            "operator_params": [{"id": "data_selection", "params": {"method": "random", "count": 5}}]},
                           execution={"chunk_size": 2})
    selection = service.wait_status(selection_id, 2, allowed={0, 1})
    assert selection["result"]["selection"]["selected_count"] == 5

    augmentation_id = _create(
        service, {"type": "TASK", "source": selection_id},
        {"id": "sys_data_augmentation", "operator_params": [{"id": "data_augmentation", "params": {
            "copies": 1, "steps": [{"name": "hflip", "probability": 1.0}]}}]},
        execution={"chunk_size": 2})
    augmentation = service.wait_status(augmentation_id, 2, allowed={0, 1})
    # The item with a malformed box fails alone; the task completes with the others.
    assert (augmentation["processed_count"], augmentation["failed_count"]) == (4, 1)
    assert augmentation["result"]["failures_by_reason"] == {"bad_annotation": 1}
    out = Path(augmentation["work_path"]["output_path"])
    rows = {Path(row["source_item"]).name: row
            for row in map(json.loads, (out / "augmented.jsonl").read_text().splitlines())}
    assert sorted(rows) == ["img_0000.png", "img_0001.png", "img_0002.png", "img_0003.png"]
    for name, boxes in BOXES.items():
        assert rows[name]["boxes"] == _flipped(boxes), name
        assert rows[name]["label"] == "cat" and (out / rows[name]["image"]).is_file()
    assert "boxes" not in rows["img_0003.png"] and rows["img_0003.png"]["label"] == "dog"


@pytest.mark.parametrize("chunk_size", [8, 1], ids=["one-chunk-in-the-driver", "several-chunks-on-the-cluster"])
def test_an_operator_that_raises_fails_the_task_as_operator_error(
        service: Service, folder: Path, chunk_size: int) -> None:
    make_many(folder, 6)
    task_id = _create(service, {"type": "OBS", "source": str(folder)},
                      {"id": "sys_data_analyse", "operator_params": [
                          {"id": "image_features"},
                          # chunk 0 is always submitted to the cluster before the driver takes a chunk itself
                          {"id": "chunk_probe", "params": {"fail_items": ["img_0000.png"]}}]},
                      execution={"chunk_size": chunk_size})
    task = service.wait_status(task_id, 3, allowed={0, 1})
    assert task["error_type"] == "operator_error"
    assert task["error_msg"] == "operator 'chunk_probe' failed: ValueError: probe refuses img_0000.png"
