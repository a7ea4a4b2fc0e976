"""/docs draws the API in a headless browser with the network cut off: every asset is the service's.

Chromium resolves every host but 127.0.0.1 to nothing and sends what it would fetch elsewhere to a proxy port
where nothing listens; its network log then shows what the page asked for (requests the page initiated, told
apart from the browser's own background traffic).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import Service
from tests.support.cluster import free_port

pytestmark = pytest.mark.ray
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(url: str, tmp_path: Path) -> tuple[str, set[str]]:
    """The page's DOM once its scripts ran, and every URL the page asked for."""
    netlog = tmp_path / "netlog.json"
    nowhere = free_port()  # nothing listens here
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
         '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
         f"--proxy-server=http://127.0.0.1:{nowhere}", "--proxy-bypass-list=127.0.0.1",
         f"--user-data-dir={tmp_path / 'profile'}", f"--log-net-log={netlog}",
         "--virtual-time-budget=20000", "--dump-dom", url],
        check=True, capture_output=True, text=True, timeout=180).stdout
    origin = f"{urlparse(url).scheme}://{urlparse(url).netloc}"
    events = json.loads(netlog.read_text())["events"]
    starts = [e["params"] for e in events if isinstance(e.get("params"), dict) and "initiator" in e["params"]]
    assert starts, "the network log recorded no request"
    urls = {p["url"] for p in starts if p["initiator"] == origin or p["url"] == url}
    return dom, urls


def _outside(urls: set[str]) -> set[str]:
    return {u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).hostname != "127.0.0.1"}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_swagger_ui_draws_the_operations_offline(service: Service, tmp_path: Path) -> None:
    dom, urls = _render(f"{service.url}/docs", tmp_path)
    assert _outside(urls) == set()
    assert any(u.endswith("/static-offline-docs/swagger-ui-bundle.js") for u in urls)
    assert any(u.endswith("/openapi.json") for u in urls)
    # Drawn, not only loaded: Swagger UI's operation blocks, with their paths and operation ids.
    assert dom.count('class="opblock opblock-') >= 35, dom[:2000]
    for path in ("/v2/{project_id}/processor-tasks", "/api/projects/{project_id}/import", "/v1/whoami"):
        assert f'data-path="{path}"' in dom, path
    assert "operations-processor-tasks-create_task_v2__project_id__processor_tasks_post" in dom
    assert 'class="btn authorize' in dom  # the security schemes give it an Authorize button


def test_redoc_is_not_served(service: Service) -> None:
    """ReDoc's bundle fetches its logo from outside, so the service does not serve it."""
    assert service.client.get("/redoc").status_code == 404
