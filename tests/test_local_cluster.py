"""deploy/local-cluster.sh, as an admin runs it: a head and two workers on this machine on ports of their own,
then stopped, taking only its own processes with it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "local-cluster.sh"
BIN = Path(sys.executable).parent


def _free_base() -> int:
    """A base port whose three nodes' port blocks (base .. base+299) are free now."""
    for base in range(27000 + (os.getpid() % 50) * 300, 60000, 300):
        ports = [base + 100 * n + o for n in range(3) for o in (0, 1, 2, *range(10, 16))]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


def _nodes(address: str) -> list[dict]:
    code = ("import json, logging, ray; ray.init(address=%r, logging_level=logging.ERROR, log_to_driver=False); "
            "print(json.dumps([{k: n[k] for k in ('Alive', 'NodeManagerPort', 'MetricsExportPort')} "
            "for n in ray.nodes()]))") % address
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "RAY_AUTH_MODE": "token"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_head_and_two_workers_on_distinct_ports_then_stopped(tmp_path: Path) -> None:
    base = _free_base()
    env = {**os.environ, "STATE_DIR": str(tmp_path / "state"), "BASE_PORT": str(base), "RAY_BIN": str(BIN),
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", "--no-serve"], env=env, capture_output=True,
                                 text=True, timeout=540)
        assert started.returncode == 0, started.stdout + started.stderr
        address = started.stdout.split("3 nodes at ")[1].split(",")[0]
        assert address.endswith(f":{base}")
        nodes = _nodes(address)
        assert [n["Alive"] for n in nodes] == [True, True, True]
        assert sorted(n["NodeManagerPort"] for n in nodes) == [base + 10, base + 110, base + 210]
        assert sorted(n["MetricsExportPort"] for n in nodes) == [base + 14, base + 114, base + 214]
        status = subprocess.run(["bash", str(SCRIPT), "status"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert "alive nodes: 3" in status.stdout
        pids = [int((tmp_path / "state" / f"node{n}.pid").read_text()) for n in range(3)]
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # The head's GCS port is free again: its processes went with it (only a listener counts, not TIME_WAIT).
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", base))
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {base} is still listened on after stop"
        time.sleep(0.5)
