"""Tasks: a handle on one processor task, in the manner of Labelbox's ``Task``.

A :class:`Task` (or :class:`AsyncTask`, from :class:`~rayproc_client.AsyncClient`) holds the task as last read
from the service (:attr:`Task.info`); :meth:`Task.refresh` reads it again and :meth:`Task.wait_till_done` polls
until it finishes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, TypeAdapter

from rayproc_client.errors import TaskFailedError, TaskTimeoutError
from rayproc_client.models import TaskInfo
from rayproc_contract.status import TaskStatus

__all__ = ["MIN_CHECK_FREQUENCY", "AsyncTask", "BaseTask", "ErrorEntry", "Task", "TaskStatus"]

#: The shortest interval ``wait_till_done`` accepts between two reads of a task, in seconds.
MIN_CHECK_FREQUENCY = 2.0

Clock = Callable[[], float]


# What a task needs of the client that read it. Protocols, not the client classes: the clients import this
# module, and this module imports no client.


class _Reader(Protocol):
    clock: Clock
    sleep: Callable[[float], None]

    def get_task(self, project_id: str, task_id: str) -> Task: ...


class _AsyncReader(Protocol):
    clock: Clock
    sleep: Callable[[float], Awaitable[None]]

    async def get_task(self, project_id: str, task_id: str) -> AsyncTask: ...


@dataclass(frozen=True)
class ErrorEntry:
    """One error of a task (see :attr:`Task.errors`).

    ``item`` is ``None`` for the task's own failure (``code`` is then its ``error_type``, e.g. ``input_not_found``)
    and the item's path for an item that could not be processed (``code`` is the reason: ``not_an_image``,
    ``truncated``, ``decode_error`` ...).
    """

    item: str | None
    code: str
    message: str


class _FailedItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    item: str
    error_code: str
    error_msg: str = ""


_FAILED_ITEMS = TypeAdapter(list[_FailedItem])


class BaseTask:
    """What a task shows, whether read by the sync or the async client: the attributes :class:`Task` and
    :class:`AsyncTask` share."""

    def __init__(self, project_id: str, info: TaskInfo) -> None:
        self.project_id = project_id
        self._info = info

    @property
    def info(self) -> TaskInfo:
        """Every field of the task as the service last described it."""
        return self._info

    @property
    def uid(self) -> str:
        """The task's id (Labelbox's name for it); the same as :attr:`task_id`."""
        return self._info.task_id

    @property
    def task_id(self) -> str:
        return self._info.task_id

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def status(self) -> int:
        """0 initialized, 1 running, 2 completed, 3 failed, 4 stopped; compare with :class:`TaskStatus`."""
        return self._info.status

    @property
    def status_name(self) -> str:
        """``"queued"`` (initialized, waiting for a slot on the cluster), ``"initialized"``, ``"running"``,
        ``"completed"``, ``"failed"`` or ``"stopped"``."""
        if self._info.status == TaskStatus.INITIALIZED and getattr(self._info, "queue_position", None) is not None:
            return "queued"
        try:
            return TaskStatus(self._info.status).label
        except ValueError:
            return f"unknown ({self._info.status})"

    @property
    def completion_percentage(self) -> float:
        """Share of the items processed (successfully or not), 0 to 100."""
        return self._info.completion_percentage

    @property
    def result(self) -> dict[str, Any] | None:
        """The task's result when it completed (per-feature statistics, issue counts, ``failed_items`` ...);
        ``None`` otherwise, and when the task was read with ``return_result=False``."""
        return self._info.result

    @property
    def errors(self) -> list[ErrorEntry]:
        """The task's errors, empty when there are none (Labelbox answers ``None``).

        A failed task (status 3) lists its failure first (``item`` is ``None``, ``code`` its ``error_type``,
        ``message`` its ``error_msg``). A completed task lists the items that could not be processed, from its
        ``result["failed_items"]``: a corrupt image never fails a task, it is recorded with its reason. The service
        puts at most the first 100 in the result; :attr:`failed_data_rows` is the full count, and
        ``failures.jsonl`` in ``info.work_path["output_path"]`` has every one.
        """
        out: list[ErrorEntry] = []
        if self._info.status == TaskStatus.FAILED:
            out.append(ErrorEntry(None, self._info.error_type or "unknown", self._info.error_msg or ""))
        failed = (self._info.result or {}).get("failed_items") or []
        out.extend(ErrorEntry(f.item, f.error_code, f.error_msg) for f in _FAILED_ITEMS.validate_python(failed))
        return out

    @property
    def created_data_rows(self) -> int:
        """How many items were processed successfully (the service's ``processed_count``).

        Labelbox answers the created rows themselves; rayproc's API has no per-item list of successes (they are
        in the output files), so this is the count, as is :attr:`failed_data_rows`.
        """
        return self._info.processed_count

    @property
    def failed_data_rows(self) -> int:
        """How many items could not be processed (the service's ``failed_count``); see :attr:`errors` for which
        and why."""
        return self._info.failed_count

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.uid} {self.name!r} in {self.project_id}: {self.status_name}, "
                f"{self.completion_percentage:g}%>")


class _WaitPlan:
    """When ``wait_till_done`` reads the task: at once, then every ``check_frequency`` seconds, and a last time at
    the deadline (never after it); what it does with each reading."""

    def __init__(self, timeout_seconds: float, check_frequency: float, clock: Clock) -> None:
        if not check_frequency >= MIN_CHECK_FREQUENCY:  # also refuses NaN
            raise ValueError(f"check_frequency must be at least {MIN_CHECK_FREQUENCY:g} seconds, "
                             f"got {check_frequency}")
        if math.isnan(timeout_seconds) or timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be 0 or more, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        self.check_frequency = check_frequency
        self._clock = clock
        self._deadline = clock() + timeout_seconds

    def pause_after(self, task: BaseTask) -> float | None:
        """Seconds to sleep before the next reading, or ``None`` when the wait is over."""
        if task.status in (TaskStatus.COMPLETED, TaskStatus.STOPPED):
            return None
        if task.status == TaskStatus.FAILED:
            raise TaskFailedError(task)
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise TaskTimeoutError(task, self.timeout_seconds)
        return min(self.check_frequency, remaining)


class Task(BaseTask):
    """A processor task, read through a :class:`~rayproc_client.Client`.

    Get one from :meth:`Client.create_task <rayproc_client.Client.create_task>`,
    :meth:`~rayproc_client.Client.get_task` or :meth:`~rayproc_client.Client.list_tasks`. Attributes reflect the
    last reading; :meth:`refresh` reads the task again.

    ``clock`` and ``sleep`` (by default the client's, which default to ``time.monotonic`` and ``time.sleep``) are
    what :meth:`wait_till_done` measures and waits with; tests pass fakes.
    """

    def __init__(self, client: _Reader, project_id: str, info: TaskInfo, *, clock: Clock | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        super().__init__(project_id, info)
        self._client = client
        self._clock: Clock = clock or client.clock
        self._sleep: Callable[[float], None] = sleep or client.sleep

    def refresh(self) -> Task:
        """Read the task from the service again; returns the task itself."""
        self._info = self._client.get_task(self.project_id, self.uid).info
        return self

    def wait_till_done(self, timeout_seconds: float = 300.0, check_frequency: float = MIN_CHECK_FREQUENCY) -> Task:
        """Wait until the task finishes, reading it every ``check_frequency`` seconds.

        It reads the task at once, then every ``check_frequency`` seconds, and a last time when
        ``timeout_seconds`` have passed; between two readings it sleeps.

        Returns the task (refreshed) when it completed (status 2) or was stopped (status 4). A stop is someone's
        decision, not a failure, and the task can be resumed, so it ends the wait without raising: this is how
        to wait for a stop to settle. Check ``task.status == TaskStatus.STOPPED`` when that matters.

        Args:
            timeout_seconds: the longest this may wait, in seconds (five minutes by default; ``math.inf`` waits
                for as long as the task runs).
            check_frequency: seconds between two readings; at least two (the default).

        Raises:
            ValueError: ``check_frequency`` under two seconds, or a negative ``timeout_seconds``; nothing is
                read from the service then.
            TaskFailedError: the task ended failed (status 3); ``error_type`` and ``error_msg`` say why.
            TaskTimeoutError: the task had not finished when the timeout passed. Unlike Labelbox's
                ``wait_till_done``, which then returns silently, this raises; the task keeps running.
            ClientError: reading the task failed (see :mod:`rayproc_client.errors`).
        """
        plan = _WaitPlan(timeout_seconds, check_frequency, self._clock)
        while (pause := plan.pause_after(self.refresh())) is not None:
            self._sleep(pause)
        return self


class AsyncTask(BaseTask):
    """A processor task, read through an :class:`~rayproc_client.AsyncClient`: :class:`Task` with awaitable
    :meth:`refresh` and :meth:`wait_till_done`. ``sleep`` defaults to the client's (``asyncio.sleep``)."""

    def __init__(self, client: _AsyncReader, project_id: str, info: TaskInfo, *, clock: Clock | None = None,
                 sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        super().__init__(project_id, info)
        self._client = client
        self._clock: Clock = clock or client.clock
        self._sleep: Callable[[float], Awaitable[None]] = sleep or client.sleep

    async def refresh(self) -> AsyncTask:
        """Read the task from the service again; returns the task itself."""
        self._info = (await self._client.get_task(self.project_id, self.uid)).info
        return self

    async def wait_till_done(self, timeout_seconds: float = 300.0,
                             check_frequency: float = MIN_CHECK_FREQUENCY) -> AsyncTask:
        """:meth:`Task.wait_till_done`, awaitable: same readings, same returns, same errors."""
        plan = _WaitPlan(timeout_seconds, check_frequency, self._clock)
        while (pause := plan.pause_after(await self.refresh())) is not None:
            await self._sleep(pause)
        return self
