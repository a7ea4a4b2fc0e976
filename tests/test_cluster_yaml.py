"""Every shipped cluster-launcher config is valid by Ray's own schema and validator, and keeps Ray's token auth on."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cluster.yaml", "cluster-local.yaml"]


@pytest.fixture(scope="module", params=CONFIGS)
def named(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, yaml.safe_load((ROOT / request.param).read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def test_config_validates(named: tuple[str, dict], schema: dict) -> None:
    _, config = named
    jsonschema.validate(config, schema)
    validate_config(prepare_config(copy.deepcopy(config)))


def test_the_validation_would_catch_mistakes(named: tuple[str, dict], schema: dict) -> None:
    _, config = named
    typo = copy.deepcopy(config)
    typo["provder"] = typo.pop("provider")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
    if config["provider"]["type"] == "local":
        no_head = copy.deepcopy(config)
        del no_head["provider"]["head_ip"]
        with pytest.raises(click.ClickException, match="head_ip"):
            validate_config(prepare_config(no_head))
        # Ray keeps every listed host up, so the launcher's worker count is the list's length.
        assert prepare_config(copy.deepcopy(config))["max_workers"] == len(config["provider"]["worker_ips"])
    else:
        wrong_head = copy.deepcopy(config)
        wrong_head["head_node_type"] = "nope"
        with pytest.raises(ValueError):
            validate_config(prepare_config(wrong_head))


def test_ray_auth_stays_on_and_the_service_starts_on_the_head_after_ray(named: tuple[str, dict]) -> None:
    name, config = named
    assert "RAY_AUTH_MODE=disabled" not in (ROOT / name).read_text()
    assert config["file_mounts"]["~/.ray/auth_token"] == "./ray_auth_token"
    head = config["head_start_ray_commands"]
    starts = [i for i, c in enumerate(head) if "ray start --head" in c]
    serves = [i for i, c in enumerate(head) if "rayproc serve --ray-address auto" in c]
    assert starts and serves and starts[0] < serves[0], "the service starts after Ray, on the head"
    assert "--dashboard-host=127.0.0.1" in head[starts[0]]
    # Every node installs rayproc (workers run chunks, which import operators/).
    assert any("pip install" in c and "~/rayproc" in c for c in config["setup_commands"])
    assert not any("rayproc serve" in c for c in config["worker_start_ray_commands"])
