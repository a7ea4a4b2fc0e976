"""When the Ray head under ``rayproc serve`` goes away, the service exits at once, non-zero, with a clear message,
so that a supervisor starts it again (a Ray driver cannot join a new head in-process).

A head of its own for this test (``ray start --head --block`` on free ports, in a temp dir of its own) that is
killed by its processes; never ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_app.cli import EXIT_RAY_LOST
from tests.support.cluster import free_port
from tests.support.serve_process import RayHead, answers, kill_all, wait_for

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_head() -> Iterator[tuple[str, str, str]]:
    """``(gcs_address, dashboard_url, temp_dir)`` of a one-node Ray of this test's own."""
    head = RayHead()
    head.start()
    try:
        yield head.gcs_address, head.dashboard_url, head.temp_dir
    finally:
        head.kill()


def test_rayproc_serve_exits_non_zero_at_once_when_its_ray_head_goes_away(own_head, tmp_path: Path) -> None:
    gcs_address, dashboard_url, temp_dir = own_head
    port = free_port()
    # A head started by `ray start` has Ray's token auth on; the token is in ~/.ray/auth_token.
    env = {**os.environ, "RAYPROC_DASHBOARD_URL": dashboard_url, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token"}
    # Files, not pipes: Ray's log lines would fill an unread pipe and block the process on its next write.
    err_path = tmp_path / "serve.err"
    with open(tmp_path / "serve.out", "w") as out, open(err_path, "w") as errors:
        serve = subprocess.Popen(
            [sys.executable, "-m", "serve_app.cli", "serve", "--no-auth", "--port", str(port),
             "--data-dir", str(tmp_path / "data"), "--ray-address", gcs_address],
            cwd=tmp_path, env=env, stdout=out, stderr=errors, start_new_session=True)
    try:
        # Started means it printed its address (its watch begins then), not only that the API answers: the
        # replica answers while `serve.run` is still finishing.
        wait_for(lambda: serve.poll() is None and "rayproc is serving at" in (tmp_path / "serve.out").read_text()
              and answers(f"http://127.0.0.1:{port}/healthz"), 240,
              "rayproc serve to start")  # ~5 s idle; a minute on a loaded host
        kill_all(temp_dir)  # the head goes away: GCS, raylet, dashboard, Serve's actors
        lost_at = time.monotonic()
        code = serve.wait(timeout=30)
        took = time.monotonic() - lost_at
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=30)
    err = err_path.read_text()
    assert code == EXIT_RAY_LOST, (code, err[-2000:])
    assert "lost the Ray cluster" in err and gcs_address in err, err[-2000:]
    assert took < 15, took
