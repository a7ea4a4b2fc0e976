"""An operator plugin for tests: it records every item it processes, optionally slowly.

Loaded through the ``operator_plugins`` setting, exactly as a team's own
operators would be, so tests can count the work a run really did.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

from pydantic import Field

from operators.base import ImageBatch, Operator, StrictParams, TaskType
from operators.registry import OperatorRegistry


#: How long a held item waits for its release file at most, so a test that never releases fails, not hangs.
HOLD_LIMIT_SECONDS = 90.0


class WorkProbe(Operator):
    """Test probe: waits ``delay_seconds`` per item and appends each item's key to ``log_path``.

    With ``release_file``, items wait for that file to exist once ``log_path`` holds ``hold_after`` items
    (from the first item when there is no log): a test can then act on a run that is certainly still
    going (stop it, follow its log) and let it go on when it is done.
    """

    name = "work_probe"
    task_type = TaskType.ANALYSE

    class Params(StrictParams):
        delay_seconds: Annotated[float, Field(ge=0, le=5)] = 0.0
        log_path: str | None = None
        release_file: str | None = None
        hold_after: Annotated[int, Field(ge=0)] = 0

    def _hold(self) -> None:
        release, log = self.params.release_file, self.params.log_path
        if release is None:
            return
        if log is not None and self.params.hold_after:
            try:
                with open(log, "rb") as f:
                    if sum(1 for _ in f) < self.params.hold_after:
                        return
            except FileNotFoundError:
                return
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)

    def process_batch(self, batch: ImageBatch) -> dict:
        for key in batch.keys:
            self._hold()
            if self.params.delay_seconds:
                time.sleep(self.params.delay_seconds)
            if self.params.log_path:
                fd = os.open(self.params.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{key}\n".encode())
                finally:
                    os.close(fd)
        return {}


class ChunkProbe(Operator):
    """Test probe: fails its batch when it holds one of ``fail_items``; waits ``delay_seconds`` when it
    holds one of ``slow_items``, touching ``stop_file`` first if given (so a test can stop a run while
    that chunk runs)."""

    name = "chunk_probe"
    task_type = TaskType.ANALYSE

    class Params(StrictParams):
        fail_items: list[str] = []
        slow_items: list[str] = []
        stop_file: str | None = None
        delay_seconds: Annotated[float, Field(ge=0, le=5)] = 0.0

    def process_batch(self, batch: ImageBatch) -> dict:
        failing = [key for key in batch.keys if key in self.params.fail_items]
        if failing:
            raise ValueError(f"probe refuses {failing[0]}")
        if any(key in self.params.slow_items for key in batch.keys):
            if self.params.stop_file:
                open(self.params.stop_file, "a").close()
            time.sleep(self.params.delay_seconds)
        return {}


def register_operators(registry: OperatorRegistry) -> None:
    registry.register(WorkProbe)
    registry.register(ChunkProbe)
