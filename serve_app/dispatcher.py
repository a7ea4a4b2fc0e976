"""The admission queue's dispatcher: the one place queued runs are handed to Ray, and failed runs queued again.

A create or a resume only queues a run (in the database; no Ray call), so it answers in milliseconds whatever
the queue holds. The dispatcher starts queued runs, highest priority first and oldest first within a priority,
while fewer than the limits are running (``max_running_tasks`` cluster-wide, ``max_running_per_project``); it is
woken by creates, resumes, stops and settled runs, and also looks every ``dispatch_interval_seconds``, since
runs end in their own processes. Each run is claimed with one conditional write, so two dispatchers (two
replicas, or a service and its successor on the same database) never submit one run twice. A submission that
fails (Ray unreachable, or an answer lost) goes back to the queue under a fresh run id and is tried again later.

A run that failed for an infrastructure reason (:data:`jobs.status.INFRASTRUCTURE_ERRORS`) is queued again, from
its committed chunks, after a backoff, until the task has had ``max_run_attempts`` runs in a row; a stopped task
or a failure of the input or the parameters is never retried.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from jobs import launcher as L
from jobs.status import INFRASTRUCTURE_ERRORS
from jobs.store import Retry, Store, now_ms
from serve_app.metrics import METRICS
from serve_app.settings import Settings
from serve_app.submission import RunSubmitter

log = logging.getLogger("rayproc.service")

#: How long a reading of the cluster's CPU count is used (nodes join and leave, but rarely).
CPU_READING_SECONDS = 30.0
_RETRYABLE = sorted(e.value for e in INFRASTRUCTURE_ERRORS)


def cluster_cpus() -> int:
    """The cluster's CPUs as Ray counts them; this machine's when this process is not connected to Ray."""
    try:
        import ray

        if ray.is_initialized():
            return max(1, int(ray.cluster_resources().get("CPU", 0)))
    except Exception:  # noqa: BLE001 - a limit must come out of this; the machine's count is a fair one
        log.warning("could not read the cluster's CPUs; using this machine's", exc_info=True)
    return os.cpu_count() or 1


class Dispatcher:
    """Hands queued runs to Ray through ``submitter`` as slots free, and queues retries of failed runs.

    ``cpus`` gives the cluster's CPU count (the default cluster-wide limit); ``clock`` epoch milliseconds.
    """

    def __init__(self, settings: Settings, store: Store, submitter: RunSubmitter, *,
                 cpus: Callable[[], int] = cluster_cpus, clock: Callable[[], int] = now_ms) -> None:
        self.settings = settings
        self.store = store
        self.submitter = submitter
        self._cpus = cpus
        self._cpu_reading: tuple[float, int] | None = None
        self._clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def max_running(self) -> int:
        """The cluster-wide limit: the setting, else the cluster's CPUs."""
        if self.settings.max_running_tasks is not None:
            return self.settings.max_running_tasks
        now = time.monotonic()
        if self._cpu_reading is None or now - self._cpu_reading[0] > CPU_READING_SECONDS:
            self._cpu_reading = (now, self._cpus())
        return self._cpu_reading[1]

    def wake(self) -> None:
        """Have the background pass look at the queue now (it never runs in the caller's thread)."""
        self._wake.set()

    def dispatch(self) -> int:
        """One pass: queue the retries that are due, then start queued runs while the limits allow.
        Returns how many runs Ray accepted."""
        self.retry_failed()
        started = 0
        limit, per_project = self.max_running(), self.settings.max_running_per_project
        while (run := self.store.claim_queued(max_running=limit, max_per_project=per_project)) is not None:
            try:
                self.submitter.submit(task_id=run.task_id, project_id=run.project_id, task_type=run.task_type,
                                      run_id=run.run_id)
            except Exception as exc:  # noqa: BLE001 - whatever Ray said, the run must not be lost
                log.warning("could not submit run %s (%s); it stays queued", run.run_id, exc)
                self.store.requeue(run, L.new_run_id(run.task_id, run.seq), not_before=0)
                break  # Ray is away or refusing: the next pass tries again
            started += 1
            METRICS.runs_submitted.inc()
        return started

    def retry_failed(self) -> int:
        """Queue a new run of every task whose run failed for an infrastructure reason and that has attempts
        left, not before its backoff. Returns how many were queued."""
        attempts = self.settings.max_run_attempts
        queued = 0
        for task_id, run_id, attempt in self.store.failed_runs(_RETRYABLE, attempts):
            seq = len(self.store.runs_for([task_id])[task_id]) + 1
            if self.store.retry_run(task_id, run_id, L.new_run_id(task_id, seq), error_types=_RETRYABLE,
                                    max_attempts=attempts, not_before=self._clock() + self.backoff_ms(attempt)):
                log.info("task %s: run %s failed for an infrastructure reason; retry %d queued",
                         task_id, run_id, attempt)
                queued += 1
                METRICS.runs_retried.inc()
        return queued

    def retry_plan(self, task_id: str) -> Retry:
        """How a failed run of ``task_id`` is queued again, for the transaction that settles the failure."""
        return Retry(tuple(_RETRYABLE), self.settings.max_run_attempts,
                     run_id=lambda seq: L.new_run_id(task_id, seq),
                     not_before=lambda attempt: self._clock() + self.backoff_ms(attempt))

    def backoff_ms(self, attempt: int) -> int:
        """The wait before the run after failed attempt ``attempt`` (1-based): doubling, capped."""
        seconds = self.settings.retry_backoff_seconds * 2 ** (attempt - 1)
        return int(1000 * min(seconds, self.settings.retry_backoff_max_seconds))

    def start(self) -> None:
        """Dispatch in the background: when woken, and every ``dispatch_interval_seconds``."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.dispatch()
                except Exception:  # keep the loop alive; the next pass retries
                    log.exception("dispatch pass failed")
                self._wake.wait(self.settings.dispatch_interval_seconds)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="rayproc-dispatcher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
