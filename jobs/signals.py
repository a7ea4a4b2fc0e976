"""Turning Ray's stop (SIGTERM to the job's entrypoint) into a flag the runner checks between chunks."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("rayproc.runner")


def install_stop_handler(event: threading.Event) -> None:
    def on_term(signum, frame):  # noqa: ARG001
        log.warning("stop requested (signal %d): finishing chunks in flight", signum)
        event.set()

    signal.signal(signal.SIGTERM, on_term)
