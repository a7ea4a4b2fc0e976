"""The README's run command: `rayproc serve` starts a local Ray head and answers over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import free_port

pytestmark = pytest.mark.ray
RAYPROC = str(Path(sys.executable).with_name("rayproc"))


def _agent_port_taken() -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # only a listener counts, not TIME_WAIT
        try:
            s.bind(("", 52365))
        except OSError:
            return True
    return False


@pytest.mark.skipif(_agent_port_taken(), reason="another Ray instance on this machine holds Ray's agent port")
def test_serve_starts_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAYPROC_DASHBOARD_PORT": str(dashboard), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([RAYPROC, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("press Ctrl+C" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the service never finished starting"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok", "ray": "reachable"}
        assert httpx.get(f"http://127.0.0.1:{port}/v2/p/processor-tasks").json() == {"count": 0, "tasks": []}
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "rayproc"
        assert (tmp_path / "data" / "rayproc.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "shutting down" in out
    assert f"http://127.0.0.1:{port}" in out and f"http://127.0.0.1:{port}/docs" in out
    assert f"http://127.0.0.1:{dashboard}" in out


def test_serve_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    proc = subprocess.run([RAYPROC, "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0" in proc.stderr
