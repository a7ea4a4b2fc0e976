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


class WorkProbe(Operator):
    """Test probe: waits ``delay_seconds`` per item and appends each item's key to ``log_path``."""

    name = "work_probe"
    task_type = TaskType.ANALYSE

    class Params(StrictParams):
        delay_seconds: Annotated[float, Field(ge=0, le=5)] = 0.0
        log_path: str | None = None

    def process_batch(self, batch: ImageBatch) -> dict:
        for key in batch.keys:
            if self.params.delay_seconds:
                time.sleep(self.params.delay_seconds)
            if self.params.log_path:
                fd = os.open(self.params.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{key}\n".encode())
                finally:
                    os.close(fd)
        return {}


def register_operators(registry: OperatorRegistry) -> None:
    registry.register(WorkProbe)
