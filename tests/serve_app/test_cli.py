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

from tests.support.cluster import agent_port_taken, free_port

pytestmark = pytest.mark.ray
RAYPROC = str(Path(sys.executable).with_name("rayproc"))


@pytest.mark.skipif(agent_port_taken(), reason="another Ray instance on this machine holds Ray's agent port")
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
        assert httpx.get(f"http://127.0.0.1:{port}/v2/p/processor-tasks").status_code == 401
        token_file = tmp_path / "data" / "initial-admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        data = ["--data-dir", str(tmp_path / "data")]
        token = _cli("initial-token", *data).strip()
        assert not token_file.exists()  # shown once
        _cli("projects", "create", "p", *data)
        auth = {"Authorization": f"Token {token}"}
        assert httpx.get(f"http://127.0.0.1:{port}/v2/p/processor-tasks", headers=auth).json() == {
            "count": 0, "tasks": []}
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
    assert "rayproc initial-token" in out and token not in out  # the token itself never reaches the log


def _cli(*args: str) -> str:
    proc = subprocess.run([RAYPROC, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_account_commands(tmp_path: Path) -> None:
    from serve_app.accounts import Accounts

    data = ["--data-dir", str(tmp_path)]
    _cli("users", "create", "ana", *data)
    _cli("projects", "create", "vision", *data)
    _cli("projects", "add-member", "vision", "ana", "--role", "viewer", *data)
    token = _cli("tokens", "create", "ana", "--name", "laptop", *data).strip()
    accounts = Accounts(tmp_path / "rayproc.db")
    principal = accounts.authenticate(token)
    assert principal is not None and principal.name == "ana"
    assert accounts.role_in(principal, "vision") == "viewer"
    token_id = principal.token_id
    assert token_id in _cli("tokens", "list", *data)
    _cli("tokens", "revoke", token_id, *data)
    assert accounts.authenticate(token) is None
    failed = subprocess.run([RAYPROC, "projects", "add-member", "nope", "ana", *data], capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode == 1 and "project 'nope' not found" in failed.stderr


def test_no_auth_mode_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    proc = subprocess.run([RAYPROC, "serve", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without authentication" in proc.stderr
