"""The template catalog, as the API serves it."""

from __future__ import annotations

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
    assert analyse["label_en"] == "Feature analysis" and analyse["default_operators"] == ["image_features"]
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
