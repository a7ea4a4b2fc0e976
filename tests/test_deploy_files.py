"""The Serve config, the Dockerfile and the KubeRay manifest: parsed and checked here (no docker, no Kubernetes),
and the Serve config deployed for real, as a second application on the session's cluster."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from serve_app.deployment import SERVE_CONTROLLER_OPTIONS
from serve_app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "deploy" / "serve.yaml"
KUBE = ROOT / "deploy" / "kuberay-rayservice.yaml"


def _serve_config() -> dict:
    return yaml.safe_load(SERVE.read_text())


def test_the_serve_config_is_valid_binds_its_host_and_types_its_args() -> None:
    config = _serve_config()
    schema = ServeDeploySchema.model_validate(config)
    assert "host" in config["http_options"] and schema.http_options.host == "127.0.0.1"
    (app,) = schema.applications
    assert app.import_path == "serve_app.serve_entry:app" and app.route_prefix == "/"
    working_dir = (app.runtime_env or {}).get("working_dir")
    assert working_dir is None or re.match(r"^(local://|[a-z0-9]+://)", working_dir)
    # Serve's controller and proxy at the API's priority, as `rayproc serve` starts them.
    assert schema.controller_options.model_dump(exclude_none=True) == SERVE_CONTROLLER_OPTIONS
    settings = Settings.model_validate(app.args)
    assert settings.max_running_tasks == 8 and settings.allowed_roots == ["/mnt/data"] and settings.auth_enabled
    with pytest.raises(ValidationError):  # a typo is refused at deploy time, not ignored
        Settings.model_validate({**app.args, "max_runing_tasks": 3})


def test_the_dockerfile_installs_as_the_readme_does() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    run = " ".join(line.strip() for line in docker.splitlines() if line.startswith("RUN python3 -m venv"))
    # The README's steps, with the venv at the image's path.
    assert "python3 -m venv .venv && .venv/bin/pip install -e ." in readme
    assert run == "RUN python3 -m venv /opt/rayproc/.venv && /opt/rayproc/.venv/bin/pip install -e ."
    base = re.search(r"^FROM (\S+)", docker, re.M).group(1)
    import ray

    assert base == f"rayproject/ray:{ray.__version__}-py311"  # the Ray of pyproject.toml's pin
    assert f"ray[default,serve,data]=={ray.__version__}" in (ROOT / "pyproject.toml").read_text()
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", docker, re.M).group(1).split()}
    assert exposed == {8000, 8265, 6379, 8080}


def test_the_rayservice_manifest_names_the_image_serve_config_and_ports() -> None:
    docs = list(yaml.safe_load_all(KUBE.read_text()))
    service = next(d for d in docs if d["kind"] == "RayService")
    assert service["apiVersion"] == "ray.io/v1"
    assert next(d for d in docs if d["kind"] == "PersistentVolumeClaim")["metadata"]["name"] == "rayproc-data"
    spec = service["spec"]
    embedded = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"]))
    shipped = ServeDeploySchema.model_validate(_serve_config())
    # The same application as deploy/serve.yaml; only the bind address differs (inside a pod).
    assert [a.model_dump() for a in embedded.applications] == [a.model_dump() for a in shipped.applications]
    assert embedded.http_options.host == "0.0.0.0" and embedded.http_options.port == 8000
    assert embedded.controller_options == shipped.controller_options
    cluster = spec["rayClusterConfig"]
    import ray

    assert cluster["rayVersion"] == ray.__version__ and cluster["authOptions"] == {"mode": "token"}
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    workers = [g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"]]
    images = {head["image"], *(w["image"] for w in workers)}
    assert len(images) == 1 and images.pop().endswith("/rayproc:0.1.0")  # one image, the Dockerfile's
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000, "metrics": 8080}
    assert cluster["headGroupSpec"]["rayStartParams"]["metrics-export-port"] == "8080"
    for container in [head, *workers]:
        assert {"name": "data", "mountPath": "/mnt/data"} in container["volumeMounts"]


@pytest.mark.ray
def test_the_serve_config_deploys_and_answers(service, tmp_path: Path) -> None:
    """The shipped application, its args as the file has them but for paths and addresses, built by Serve's own
    builder call and run next to the session's app under its own route prefix."""
    from ray import serve
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    (app,) = _serve_config()["applications"]
    args = {**app["args"], "data_dir": str(tmp_path / "data"), "allowed_roots": [str(tmp_path)],
            "dashboard_url": service.settings.dashboard_url}
    built = call_user_app_builder_with_args_if_necessary(import_attr(app["import_path"]), args)
    name, prefix = "rayproc-deployed", "/deployed"
    serve.run(built, name=name, route_prefix=prefix, blocking=False)
    try:
        deadline = time.monotonic() + 60
        while True:
            r = httpx.get(f"{service.url}{prefix}/-/readyz", timeout=10)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.status_code == 200 and r.json()["status"] == "ready", r.text
        token = (tmp_path / "data" / "initial-admin-token").read_text().strip()
        assert (tmp_path / "data" / "initial-admin-token").stat().st_mode & 0o777 == 0o600
        who = httpx.get(f"{service.url}{prefix}/v1/whoami", headers={"Authorization": f"Token {token}"}, timeout=10)
        assert who.status_code == 200 and who.json()["name"] == "admin" and who.json()["is_admin"] is True
        assert httpx.get(f"{service.url}{prefix}/v1/whoami", timeout=10).status_code == 401
    finally:
        serve.delete(name)
