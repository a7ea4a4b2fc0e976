"""Run rayproc on a three-node Ray cluster on this machine and report what happened, as JSON.

    python -m tests.support.multinode WORKDIR

Runs in its own process because a process can be connected to one Ray cluster
only, and the test session already holds one. Both tasks run through the service
on one cluster (starting one costs tens of seconds on a loaded host); the second
loses a worker node while it runs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx


N = 60
CHUNK = 2


def _template(delay: float, log_path: Path) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features"}, {"id": "work_probe", "params": {"delay_seconds": delay, "log_path": str(log_path)}}]}


def _run_task(client: httpx.Client, folder: Path, template: dict, on_progress=None) -> dict:
    r = client.post("/v2/mn/processor-tasks", json={
        "name": "multi-node", "data_source": {"type": "OBS", "source": str(folder)},
        "execution": {"chunk_size": CHUNK}, "template": template})
    if r.status_code != 200:
        raise RuntimeError(f"create failed: {r.status_code} {r.text}")
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 240
    statuses = set()
    while time.monotonic() < deadline:
        task = client.get(f"/v2/mn/processor-tasks/{task_id}").json()
        statuses.add(task["status"])
        if on_progress is not None:
            on_progress(task)
        if task["status"] in (2, 3, 4):
            break
        time.sleep(0.2)
    return {**task, "statuses_seen": sorted(statuses)}


def _outcome(task: dict, log_path: Path) -> dict:
    from jobs.layout import RunLayout

    layout = RunLayout(task["work_path"]["output_path"])
    placement = layout.placements()
    done = task["status"] == 2
    return {
        "status": task["status"], "error_msg": task.get("error_msg"), "statuses_seen": task["statuses_seen"],
        "processed_count": task["processed_count"], "failed_count": task["failed_count"],
        "runs": [(r["attempt"], r["outcome"]) for r in task.get("runs", [])],
        "items": [json.loads(x)["item"] for x in layout.features.read_text().splitlines()] if done else [],
        "features": layout.features.read_text() if done else None,
        "failures": (layout.features.parent / "failures.jsonl").read_text() if done else None,
        "result": task.get("result"),
        "work": log_path.read_text().splitlines() if log_path.exists() else [],
        "nodes": sorted(set(placement.values())), "chunks": len(placement),
    }


def main(workdir: Path) -> dict:
    """On one cluster of a head and two workers (one CPU each): a task with no fault (the reference; its chunks
    should spread over every node), then the same task while one worker node is removed mid-run."""
    from serve_app import deployment
    from serve_app.settings import Settings
    from tests.support.cluster import free_port, start_cluster
    from tests.support.images import make_many

    cluster, dashboard_url, workers = start_cluster(workers=2, head_cpus=1)
    folder = workdir / "images"
    make_many(folder, N)
    settings = Settings(
        data_dir=workdir / "data", port=free_port(), ray_address=cluster.address,
        dashboard_url=dashboard_url, allowed_roots=[str(workdir)],
        operator_plugins=["tests.support.probe_operators"], reconcile_interval_seconds=0.5,
        retry_backoff_seconds=0.2, dispatch_interval_seconds=0.2,
    )
    running = deployment.start(settings)
    report: dict = {"worker_node_ids": [w.node_id for w in workers], "head_node_id": cluster.head_node.node_id}
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
        ref_log = workdir / "reference.log"
        report["reference"] = _outcome(_run_task(client, folder, _template(0.1, ref_log)), ref_log)

        killed = []

        def kill_at_progress(task: dict) -> None:
            if not killed and task["processed_count"] >= 10:
                cluster.remove_node(workers[0])
                killed.append(task["processed_count"])

        loss_log = workdir / "node-loss.log"
        report["node_loss"] = {**_outcome(_run_task(client, folder, _template(0.1, loss_log), kill_at_progress),
                                          loss_log), "killed_at": killed[0] if killed else None}
    finally:
        deployment.stop()
        cluster.shutdown()
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
