"""The template catalog, as the API serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Service

pytestmark = pytest.mark.ray

TEMPLATES = ["sys_data_analyse", "sys_data_cleaning", "sys_data_augmentation", "sys_data_validation",
             "sys_data_selection"]


def test_templates_list_every_task_type_with_operator_schemas(service: Service) -> None:
    r = service.client.get("/v2/p1/processor-templates")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 5 and [t["template_id"] for t in body["templates"]] == TEMPLATES
    analyse = body["templates"][0]
    assert analyse["label_en"] == "Feature analysis"
    assert analyse["default_operators"] == ["image_features", "image_issues", "box_features"]
    ops = {op["id"]: op for op in analyse["operators"]}
    schema = ops["image_features"]["params_schema"]
    assert schema["properties"]["histogram_bins"]["minimum"] == 2
    assert "blur" in ops["image_features"]["description"]
    for template in body["templates"]:
        for op in template["operators"]:
            assert op["description"] and op["params_schema"]["type"] == "object"


def test_modelarts_template_items(service: Service) -> None:
    body = service.client.get("/v2/p1/processor-tasks/items").json()
    assert body["total"] == 5
    assert body["items"][0] == {"template_id": "sys_data_analyse", "label_en": "Feature analysis",
                                "label_zh": "特征分析"}


CASES = {
    "sys_data_analyse": ([], "issues.jsonl"),
    "sys_data_cleaning": ([{"id": "data_cleaning", "params": {"drop_near_duplicates": True}}], "removed.jsonl"),
    "sys_data_validation": ([{"id": "data_validation", "params": {"allowed_labels": ["cat", "dog"]}}],
                            "findings.jsonl"),
    "sys_data_selection": ([{"id": "data_selection", "params": {"method": "diversity", "count": 4}}],
                           "selected.jsonl"),
    "sys_data_augmentation": ([{"id": "data_augmentation", "params": {"copies": 2, "seed": 9}}], "augmented.jsonl"),
}


@pytest.fixture(scope="module")
def dataset_folder(service: Service) -> Path:
    from tests.support.dataset import make_dataset

    folder = service.root / "inputs" / "templates-dataset"
    make_dataset(folder)
    return folder


@pytest.mark.parametrize("template", list(CASES))
def test_every_template_gives_the_same_result_through_a_ray_job_as_directly(
        service: Service, dataset_folder: Path, tmp_path: Path, template: str) -> None:
    from tests.support.dataset import ROOT_ANNOTATIONS, run_direct

    params, output = CASES[template]
    with_manifest = template in ("sys_data_validation", "sys_data_selection", "sys_data_augmentation")
    source = dataset_folder / ROOT_ANNOTATIONS if with_manifest else dataset_folder
    task_id = service.create(source, name=template, template={"id": template, "operator_params": params},
                             execution={"chunk_size": 2})
    task = service.wait_status(task_id, 2, allowed={0, 1})
    out = Path(task["work_path"]["output_path"])
    direct_result, direct_files, _ = run_direct(dataset_folder, template, params, tmp_path, source=source)
    ray_result = {k: v for k, v in task["result"].items() if k not in ("outputs", "failed_items")}
    assert ray_result == json.loads(json.dumps(direct_result))
    ray_rows = [json.loads(line) for line in (out / output).read_text().splitlines()]
    assert ray_rows == json.loads(json.dumps(direct_files[output]))
    assert ray_rows, f"{output} should not be empty on this dataset"
    if template == "sys_data_augmentation":
        for row in ray_rows:
            assert (out / row["image"]).read_bytes() == (tmp_path / row["image"]).read_bytes()
