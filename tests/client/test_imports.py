"""The client stands alone: importing it loads neither Ray, FastAPI, numpy nor any server package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import rayproc_client

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("ray", "fastapi", "starlette", "numpy", "PIL", "serve_app", "jobs", "operators")


def test_importing_the_client_loads_no_server_dependency() -> None:
    code = (
        "import json, sys\n"
        "import rayproc_client, rayproc_client.client, rayproc_client.errors, rayproc_client.task\n"
        "rayproc_client.Client('http://127.0.0.1:1', 'token').close()\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=60)
    assert json.loads(out.stdout) == []


def test_the_public_names_are_all_exported() -> None:
    for name in rayproc_client.__all__:
        assert hasattr(rayproc_client, name), name
