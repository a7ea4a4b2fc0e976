"""Drive synapse-sdk's real ``AgentClient`` against a running rayproc; print what each call returned.

Run by ``tests/serve_app/test_agent.py`` under a Python 3.12 that has synapse-sdk::

    python synapse_live.py BASE_URL TOKEN DONE_JOB RUNNING_JOB

It prints one JSON object: each call's result, or ``{"error": status, "detail": ...}`` for a
``ClientError``. The test asserts on it.
"""

from __future__ import annotations

import json
import sys
import time


def main(base_url: str, token: str, done: str, running: str) -> dict:
    from synapse_sdk.clients.agent import AgentClient
    from synapse_sdk.exceptions import ClientError

    client = AgentClient(base_url, f"Token {token}")
    out: dict = {}

    def record(name: str, call) -> object:
        try:
            out[name] = call()
        except ClientError as exc:
            out[name] = {"error": exc.status_code, "detail": exc.detail}
        return out[name]

    record("health_check", client.health_check)
    record("list_jobs", client.list_jobs)
    record("get_job", lambda: client.get_job(done))
    record("get_job_logs", lambda: client.get_job_logs(done))
    record("tail_job_logs", lambda: list(client.tail_job_logs(done, protocol="http")))
    record("stop_finished", lambda: client.stop_job(done))
    record("stop_invalid", lambda: client.stop_job("not a job"))
    record("stop_unknown", lambda: client.stop_job("noSuchJob0123456789"))
    record("stop_running", lambda: client.stop_job(running))
    deadline = time.monotonic() + 90
    while record("after_stop", lambda: client.get_job(running)).get("status") not in ("STOPPED", None):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    record("resume", lambda: client._post(f"jobs/{running}/resume/"))
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
