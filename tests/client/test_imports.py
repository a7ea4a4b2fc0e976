"""The client stands alone: importing it loads neither Ray, FastAPI, numpy nor any server package; the wire contract
it shares with the service loads none of them either, nor httpx, nor the client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import rayproc_client

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("ray", "fastapi", "starlette", "numpy", "PIL", "serve_app", "jobs", "operators")
CONTRACT_FORBIDDEN = (*FORBIDDEN, "httpx", "rayproc_client")


def _loaded(code: str, forbidden: tuple[str, ...]) -> list[str]:
    code += f"import json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=60)
    return json.loads(out.stdout)


def test_importing_the_client_loads_no_server_dependency() -> None:
    code = (
        "import rayproc_client, rayproc_client.client, rayproc_client.errors, rayproc_client.task\n"
        "rayproc_client.Client('http://127.0.0.1:1', 'token').close()\n"
    )
    assert _loaded(code, FORBIDDEN) == []


def test_importing_the_contract_loads_no_server_dependency_nor_the_client() -> None:
    code = ("import rayproc_contract, rayproc_contract.errors, rayproc_contract.ids, rayproc_contract.models, "
            "rayproc_contract.query, rayproc_contract.status\n")
    assert _loaded(code, CONTRACT_FORBIDDEN) == []


def test_the_check_sees_a_forbidden_import() -> None:
    assert "httpx" in _loaded("import httpx\n", CONTRACT_FORBIDDEN)


def test_the_public_names_are_all_exported() -> None:
    for name in rayproc_client.__all__:
        assert hasattr(rayproc_client, name), name
