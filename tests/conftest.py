"""Session fixtures: one real local Ray cluster with Serve and the rayproc API on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import s3
from tests.support.cluster import free_port, start_cluster
from tests.support.serve_process import wait_task

#: The store tests' ``database`` fixture (SQLite and a real PostgreSQL on loopback).
pytest_plugins = ["tests.support.postgres"]
PLUGINS = ["tests.support.probe_operators"]
#: The S3-compatible test server's port, in the AWS variables before any Ray process starts, so job drivers
#: and workers inherit the same configuration as the service.
S3_PORT = free_port()
s3.configure_env(S3_PORT)
#: Projects the tests use; they exist before the first request.
PROJECTS = ("p1", "meta-project", "owner", "intruder", "listing", "imports")


@dataclass
class Service:
    url: str
    dashboard_url: str
    root: Path  # the allowed root every test folder lives under
    data_dir: Path
    client: httpx.Client
    settings: object  # the resolved serve_app.settings.Settings the app was deployed with
    accounts: object  # serve_app.accounts.Accounts on the service's database

    def client_for(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Token {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def tasks(self, project: str = "p1") -> str:
        return f"/v2/{project}/processor-tasks"

    def create(self, source: Path | str, project: str = "p1", **body) -> str:
        payload = {"name": body.pop("name", "task"), "data_source": {"type": "OBS", "source": str(source)},
                   "template": body.pop("template", {"id": "sys_data_analyse"}), **body}
        r = self.client.post(self.tasks(project), json=payload)
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def get(self, task_id: str, project: str = "p1") -> dict:
        r = self.client.get(f"{self.tasks(project)}/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, task_id: str, until: Callable[[dict], bool], *, allowed: set[int], timeout: float = 120.0,
             project: str = "p1") -> dict:
        """Poll until ``until(task)``; every status seen on the way must be in ``allowed``."""
        return wait_task(lambda tid: self.get(tid, project), task_id, until, allowed=allowed, timeout=timeout)

    def wait_status(self, task_id: str, status: int, *, allowed: set[int], **kw) -> dict:
        return self.wait(task_id, lambda t: t["status"] == status, allowed=allowed | {status}, **kw)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from serve_app import deployment
    from serve_app.settings import Settings

    root = tmp_path_factory.mktemp("root")
    data_dir = root / "data"
    cluster, dashboard_url, _ = start_cluster()
    settings = Settings(
        data_dir=data_dir, host="127.0.0.1", port=free_port(), ray_address=cluster.address,
        dashboard_url=dashboard_url,
        allowed_roots=[str(root), f"s3://{s3.BUCKET}", f"s3://{s3.ABSENT_BUCKET}"], operator_plugins=PLUGINS,
        default_chunk_size=8,
        stop_grace_seconds=30, reconcile_interval_seconds=0.5, max_import_bytes=2_000_000,
        dispatch_interval_seconds=0.2, retry_backoff_seconds=0.2,
        ray_call_timeout_seconds=4,
    )
    from serve_app.accounts import Accounts

    running = deployment.start(settings)
    accounts = Accounts(running.settings.db_path)
    token = running.initial_token_file.read_text().strip()  # the first start's admin token
    for project in PROJECTS:
        accounts.create_project(project)
    client = httpx.Client(base_url=running.url, timeout=60, headers={"Authorization": f"Token {token}"})
    try:
        yield Service(running.url, running.dashboard_url, root, running.settings.data_dir, client, running.settings,
                      accounts)
    finally:
        client.close()
        deployment.stop()
        cluster.shutdown()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on loopback, with the allowed bucket and one outside it."""
    with s3.moto_server(S3_PORT) as url:
        client = s3.s3_client()
        for bucket in (s3.BUCKET, s3.OUTSIDE_BUCKET):
            client.create_bucket(Bucket=bucket)
        yield url


@pytest.fixture
def folder(service: Service, request: pytest.FixtureRequest) -> Path:
    """A fresh folder under the service's allowed root."""
    path = service.root / "inputs" / request.node.name.replace("[", "_").replace("]", "")
    path.mkdir(parents=True, exist_ok=False)
    return path
