"""Record the exact requests synapse-sdk's ``AgentClient`` sends, for tests that cannot import it.

synapse-sdk needs Python 3.12; the suite runs on 3.11. So this script runs the real SDK
under 3.12 against a tiny recorder on loopback, and writes what each call sent (method,
path, query, headers, body) to ``tests/support/synapse_requests.json``. The replay test
(``tests/serve_app/test_agent.py``) sends those requests to the live service and checks the
answers are what the SDK parses. Regenerate after a synapse-sdk upgrade::

    /root/.pyenv/versions/3.12.1/bin/python3.12 -m venv .venv312
    .venv312/bin/pip install synapse-sdk
    .venv312/bin/python tests/support/synapse_record.py

Placeholders: ``{project_id}`` in paths, ``{job_id}`` for the job, ``{token}`` in the header.
The recorder answers each call with the smallest reply the SDK accepts; the answers are not
recorded (the live service gives the real ones).
"""

from __future__ import annotations

import json
import platform
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

OUT = Path(__file__).with_name("synapse_requests.json")
PROJECT, JOB, TOKEN = "PROJECT", "JOBID", "TOKEN"
#: Headers that say which machine or library build sent the request, not what the SDK asks.
VOLATILE = {"host", "user-agent"}


class Recorder(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.seen.append({
            "method": self.command,
            "path": url.path.replace(PROJECT, "{project_id}").replace(JOB, "{job_id}"),
            "query": parse_qsl(url.query, keep_blank_values=True),
            "headers": {k: v.replace(TOKEN, "{token}") for k, v in self.headers.items() if k.lower() not in VOLATILE},
            "body": body.decode() if body else None,
        })
        if url.path.endswith("/logs/stream/"):
            payload, kind = b'data: {"type": "complete"}\n\n', "text/event-stream"
        elif url.path.endswith("/jobs/"):
            payload, kind = b"[]", "application/json"
        elif url.path.endswith("/logs/"):
            payload, kind = b'""', "application/json"
        else:
            payload, kind = b"{}", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # keep the output to the summary
        pass


def calls(client) -> dict:
    """Each AgentClient call the service supports, by name; resume goes through the SDK's own _post."""
    return {
        "list_jobs": lambda: client.list_jobs(),
        "get_job": lambda: client.get_job(JOB),
        "get_job_logs": lambda: client.get_job_logs(JOB),
        "stream_tail_job_logs": lambda: list(client.stream_tail_job_logs(JOB)),
        "tail_job_logs_http": lambda: list(client.tail_job_logs(JOB, protocol="http")),
        "stop_job": lambda: client.stop_job(JOB),
        "resume_job": lambda: client._post(f"jobs/{JOB}/resume/"),
        "health_check": lambda: client.health_check(),
    }


def main() -> int:
    from synapse_sdk.clients.agent import AgentClient

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/agent/v1/{PROJECT}"
    client = AgentClient(base, f"Token {TOKEN}")
    recorded = {}
    try:
        for name, call in calls(client).items():
            Recorder.seen.clear()
            call()
            if len(Recorder.seen) != 1:
                raise SystemExit(f"{name}: expected one request, saw {len(Recorder.seen)}")
            recorded[name] = Recorder.seen[0]
    finally:
        server.shutdown()
    OUT.write_text(json.dumps({
        "sdk": f"synapse-sdk {version('synapse-sdk')}", "python": platform.python_version(),
        "base_url": "/agent/v1/{project_id}", "calls": recorded}, indent=2) + "\n")
    print(f"recorded {len(recorded)} calls from synapse-sdk {version('synapse-sdk')} into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
