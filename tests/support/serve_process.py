"""`rayproc serve` as a process of its own, and a Ray head of a test's own, for fault tests that stop, kill and
start them again (a process can hold one Ray connection only, and the test session already holds one).

A head is killed by its processes (they all name its temp dir); never ``ray stop``, which would stop every Ray on
the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.cluster import free_port
from tests.support.processes import pids_with

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "faults"


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def wait_task(get, task_id: str, until, *, allowed: set[int], timeout: float) -> dict:
    """Poll ``get(task_id)`` until ``until(task)``; every status seen on the way must be in ``allowed``."""
    deadline = time.monotonic() + timeout
    while True:
        task = get(task_id)
        assert task["status"] in allowed, f"unexpected status {task['status']}: {task.get('error_msg')}"
        if until(task):
            return task
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting on task {task_id}; last seen {task}")
        time.sleep(0.1)


def answers(url: str, *statuses: int) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (statuses or (200,))
    except httpx.HTTPError:
        return False


def kill_all(*fragments: str) -> None:
    """SIGKILL every process whose command line holds all of ``fragments`` (this test's own, by its paths)."""
    for pid in pids_with(*fragments):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class RayHead:
    """``ray start --head --block`` on free ports chosen once, in a short temp dir of its own; :meth:`start` again
    after :meth:`kill` is a restart of the head at the same address (its in-memory GCS starts empty)."""

    def __init__(self) -> None:
        import ray

        self.temp_dir = tempfile.mkdtemp(prefix="rayhead")  # short: Ray's socket paths live under it
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.ports = {"--port": self.gcs_port, "--dashboard-port": self.dashboard_port,
                      "--dashboard-agent-listen-port": free_port(), "--dashboard-agent-grpc-port": free_port(),
                      "--node-manager-port": free_port(), "--object-manager-port": free_port(),
                      "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port(),
                      "--ray-client-server-port": free_port()}
        self.worker_port = free_port()
        self.gcs_address = f"{ray.util.get_node_ip_address()}:{self.gcs_port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard_port}"
        self.proc: subprocess.Popen | None = None

    #: Starts of the head tried before a test fails: on a loaded host Ray's agents can start too slowly for Ray's
    #: own deadline and the raylet exits (deploy/local-cluster.sh retries the same way, with the same variable).
    START_ATTEMPTS = 3

    def start(self, timeout: float = 90) -> None:
        """The head, at this object's address, answering on its dashboard; a start that fails (the process
        exits, or nothing answers within ``timeout``) is tried again at the same ports."""
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus", "1",
               "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--temp-dir", self.temp_dir,
               "--disable-usage-stats", "--min-worker-port", str(self.worker_port),
               "--max-worker-port", str(self.worker_port + 20), *[str(x) for kv in self.ports.items() for x in kv]]
        env = {**os.environ, "RAY_agent_register_timeout_ms": os.environ.get("RAY_agent_register_timeout_ms",
                                                                               "180000")}
        log = Path(self.temp_dir) / "ray-start.log"
        for attempt in range(1, self.START_ATTEMPTS + 1):
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                if answers(f"{self.dashboard_url}/api/version", 200, 401):
                    return
                time.sleep(0.5)
            self.kill()
            if attempt == self.START_ATTEMPTS:
                tail = log.read_text(errors="replace")[-2000:]
                raise AssertionError(f"the test's own Ray head did not answer after {attempt} starts; "
                                     f"`ray start` said:\n{tail}")

    def kill(self) -> None:
        """The head node goes: GCS, raylet, dashboard, Serve's actors and every process they started."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_all(self.temp_dir)
        if self.proc is not None:
            self.proc.wait(timeout=30)
            self.proc = None


class ServeProcess:
    """One ``rayproc serve --no-auth`` on ``port`` over ``data_dir``; stdout and stderr go to files (Ray's log
    lines would fill an unread pipe and block the process on its next write)."""

    def __init__(self, workdir: Path, port: int, env: dict[str, str], *args: str) -> None:
        self.workdir, self.port, self.env, self.args = workdir, port, env, args
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def out_path(self) -> Path:
        return self.workdir / f"serve{self.starts}.out"

    @property
    def err_path(self) -> Path:
        return self.workdir / f"serve{self.starts}.err"

    def start(self, timeout: float = 240) -> None:
        self.starts += 1
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serve_app.cli", "serve", "--no-auth", "--port", str(self.port),
                 "--data-dir", str(self.workdir / "data"), *self.args],
                cwd=self.workdir, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env}, stdout=out, stderr=err,
                start_new_session=True)
        # Started means it printed its address (after serve.run and the start-up settling), and Ray's Jobs API
        # answers through it.
        wait_for(lambda: self._alive_or_raise() and "rayproc is serving at" in self.out_path.read_text()
                 and self._ray_reachable(), timeout, "rayproc serve to start")

    def _alive_or_raise(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"rayproc serve exited {self.proc.returncode}: {self.err_path.read_text()[-3000:]}")
        return True

    def _ray_reachable(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).json().get("ray") == "reachable"
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        """Signal the process and wait for it: its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=30)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself: its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    # ----- the API ------------------------------------------------------------------------------------

    def create(self, folder: Path, template: dict, chunk_size: int) -> str:
        from serve_app.accounts import Accounts

        Accounts(self.workdir / "data" / "rayproc.db").ensure_project(PROJECT)
        r = httpx.post(f"{self.url}/v2/{PROJECT}/processor-tasks", timeout=60, json={
            "name": "fault", "data_source": {"type": "OBS", "source": str(folder)}, "template": template,
            "execution": {"chunk_size": chunk_size}})
        assert r.status_code == 200, r.text
        return r.json()["task_id"]

    def get(self, task_id: str) -> dict:
        r = httpx.get(f"{self.url}/v2/{PROJECT}/processor-tasks/{task_id}", timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, task_id: str, until, *, allowed: set[int], timeout: float = 180) -> dict:
        """Poll until ``until(task)``; every status seen on the way must be in ``allowed``."""
        return wait_task(self.get, task_id, until, allowed=allowed, timeout=timeout)


def probe_template(log_path: Path, delay: float, **hold) -> dict:
    """An analysis whose probe logs every item, ``delay`` s each; ``hold``: the probe's ``release_file`` and
    ``hold_after``, to keep a run going until the test lets it."""
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}},
        {"id": "work_probe", "params": {"delay_seconds": delay, "log_path": str(log_path), **hold}}]}


def service_env(root: Path) -> dict[str, str]:
    """Settings for a fast-healing service over ``root`` (retries after 0.2 s, settling every 0.5 s)."""
    return {"RAYPROC_ALLOWED_ROOTS": str(root), "RAYPROC_OPERATOR_PLUGINS": "tests.support.probe_operators",
            "RAYPROC_RECONCILE_INTERVAL_SECONDS": "0.5", "RAYPROC_DISPATCH_INTERVAL_SECONDS": "0.2",
            "RAYPROC_RETRY_BACKOFF_SECONDS": "0.2", "RAYPROC_RAY_CALL_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1"}


def assert_matches_uninterrupted(serve: ServeProcess, healed: dict, folder: Path, tmp_path: Path,
                                 work_log: Path, n: int, in_flight: int, chunk_size: int) -> None:
    """Every item processed, none twice beyond ``in_flight`` items (the chunks in flight at the fault), and the
    outputs byte for byte those of the same task run without a fault on the same service."""
    work = Counter(work_log.read_text().splitlines())
    assert set(work) == {f"img_{i:04d}.png" for i in range(n)}
    assert sum(work.values()) - n <= in_flight, f"only chunks in flight may be redone: {work}"
    ref_id = serve.create(folder, probe_template(tmp_path / "ref.log", 0.0), chunk_size)
    ref = serve.wait(ref_id, lambda t: t["status"] == 2, allowed={0, 1, 2})
    assert len(ref["runs"]) == 1
    out, ref_out = Path(healed["work_path"]["output_path"]), Path(ref["work_path"]["output_path"])
    for name in ("features.jsonl", "failures.jsonl"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes(), name
    rows = [json.loads(line)["item"] for line in (out / "features.jsonl").read_text().splitlines()]
    assert rows == [f"img_{i:04d}.png" for i in range(n)]
    assert healed["result"] == ref["result"]
