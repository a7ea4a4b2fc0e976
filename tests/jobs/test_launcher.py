"""The Jobs API client never waits on Ray without a deadline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from jobs.launcher import JobLauncher, RayUnavailable


@pytest.fixture
def hung_dashboard() -> Iterator[str]:
    """A real listener on loopback that accepts connections and never answers, as a paused dashboard does."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not closing.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    closing.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("call", ["state", "states", "stop", "logs"])
def test_every_call_gives_up_at_its_deadline(hung_dashboard: str, call: str) -> None:
    launcher = JobLauncher(hung_dashboard, call_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(RayUnavailable):
        if call == "states":
            launcher.states()
        else:
            getattr(launcher, call)("rayproc-someTask-r1-abcdef")
    # The constructor's version check and the call itself each wait at most the deadline.
    assert time.monotonic() - started < 3.0


def test_submit_gives_up_at_its_deadline(hung_dashboard: str) -> None:
    launcher = JobLauncher(hung_dashboard, call_timeout_seconds=0.5, submit_retry_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(RayUnavailable):
        launcher.submit(run_id="rayproc-someTask-r1-abcdef", entrypoint="true", metadata={})
    assert time.monotonic() - started < 3.0
