"""Work the service repeats in the background (settling records, tidying Ray's job records)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("rayproc.service")


class Periodic:
    """Calls ``fn`` every ``interval_seconds`` on a daemon thread once started, until closed. An exception is
    logged and the next pass retries: one bad pass must not end the loop."""

    def __init__(self, fn: Callable[[], object], interval_seconds: float, name: str) -> None:
        self.fn = fn
        self.interval_seconds = interval_seconds
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self.fn()
            except Exception:
                log.exception("background pass %s failed", self.name)
