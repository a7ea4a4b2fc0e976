"""Run rayproc on a three-node Ray cluster on this machine and report what happened, as JSON.

    python -m tests.support.multinode WORKDIR [--kill-worker]

Runs in its own process because a process can be connected to one Ray cluster
only, and the test session already holds one. With ``--kill-worker`` one worker
node is removed while the task runs, to show chunks survive a node failure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx


def main(workdir: Path, kill_worker: bool) -> dict:
    from serve_app import deployment
    from serve_app.settings import Settings
    from tests.support.cluster import free_port, start_cluster
    from tests.support.images import make_many

    cluster, dashboard_url, workers = start_cluster(workers=2, head_cpus=1)
    folder = workdir / "images"
    make_many(folder, 60)
    settings = Settings(
        data_dir=workdir / "data", port=free_port(), ray_address=cluster.address,
        dashboard_url=dashboard_url, allowed_roots=[str(workdir)],
        operator_plugins=["tests.support.probe_operators"], reconcile_interval_seconds=0.5,
    )
    running = deployment.start(settings)
    report: dict = {}
    try:
        from serve_app.accounts import Accounts

        Accounts(running.settings.db_path).create_project("mn")
        token = running.initial_token_file.read_text().strip()
        client = httpx.Client(base_url=running.url, timeout=60, headers={"Authorization": f"Token {token}"})
        deadline = time.monotonic() + 60  # the head's dashboard (Jobs API) comes up after the nodes do
        while client.get("/healthz").json()["ray"] != "reachable":
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray Jobs API never became reachable")
            time.sleep(0.5)
        r = client.post("/v2/mn/processor-tasks", json={
            "name": "multi-node", "data_source": {"type": "OBS", "source": str(folder)},
            "execution": {"chunk_size": 2},
            "template": {"id": "sys_data_analyse", "operator_params": [
                {"id": "image_features"}, {"id": "work_probe", "params": {"delay_seconds": 0.1}}]},
        })
        if r.status_code != 200:
            raise RuntimeError(f"create failed: {r.status_code} {r.text}")
        task_id = r.json()["task_id"]
        killed = False
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            task = client.get(f"/v2/mn/processor-tasks/{task_id}").json()
            if kill_worker and not killed and task["processed_count"] >= 10:
                cluster.remove_node(workers[0])
                killed = True
            if task["status"] in (2, 3, 4):
                break
            time.sleep(0.2)
        from jobs.layout import RunLayout

        layout = RunLayout(task["work_path"]["output_path"])
        placement = layout.placements()
        report = {
            "status": task["status"], "error_msg": task.get("error_msg"), "killed": killed,
            "processed_count": task["processed_count"], "failed_count": task["failed_count"],
            "items": [json.loads(x)["item"] for x in layout.features.read_text().splitlines()]
            if task["status"] == 2 else [],
            "nodes": sorted(set(placement.values())), "chunks": len(placement),
            "worker_node_ids": [w.node_id for w in workers], "head_node_id": cluster.head_node.node_id,
        }
    finally:
        deployment.stop()
        cluster.shutdown()
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), "--kill-worker" in sys.argv[2:])))
