"""cluster.yaml is a valid Ray cluster-launcher config that keeps Ray's token auth on."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def test_cluster_yaml_validates(config: dict, schema: dict) -> None:
    jsonschema.validate(config, schema)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_the_validation_would_catch_mistakes(config: dict, schema: dict) -> None:
    typo = copy.deepcopy(config)
    typo["provder"] = typo.pop("provider")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
    wrong_head = copy.deepcopy(config)
    wrong_head["head_node_type"] = "nope"
    with pytest.raises(ValueError):
        validate_config(prepare_config(wrong_head))


def test_ray_auth_stays_on_and_the_service_starts_on_the_head(config: dict) -> None:
    text = (ROOT / "cluster.yaml").read_text()
    assert "RAY_AUTH_MODE" not in text
    assert "~/.ray/auth_token" in config["file_mounts"]
    head = " ".join(config["head_start_ray_commands"])
    assert "rayproc serve --ray-address auto" in head and "--dashboard-host=127.0.0.1" in head
