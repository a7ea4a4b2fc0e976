"""Ended runs' Ray job records: their logs kept under the task's work path, then the records deleted.

Ray keeps every finished job's record for good, and its dashboard and job list slow as they grow. Once a run has
ended, its driver log (which the runner cannot read whole itself) is copied to the task's output folder
(:meth:`jobs.layout.RunLayout.run_log`), bounded in size; after ``retention_seconds`` the Ray record is deleted.
A job that has not ended is never deleted, nor one whose log could not be kept. ``logs`` answers from the kept
file, so old runs' logs outlive Ray's records (and a head restart, which loses them with the in-memory GCS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from jobs import launcher as L
from jobs.atomic import write_atomic
from jobs.layout import RunLayout
from jobs.store import Store
from serve_app.background import Periodic

log = logging.getLogger("rayproc.service")

#: The most of a run's log kept; a longer one keeps its end (where the outcome is).
MAX_KEPT_LOG_BYTES = 1_048_576
_CUT_NOTE = "[... earlier lines of this log were not kept ...]\n"


def kept_log(output_dir: str | Path, run_id: str) -> str | None:
    """The log kept for an ended run (in a folder or a bucket), or None if it was not kept (yet) or cannot be
    read now (then Ray's copy, if it still has one, answers)."""
    try:
        return RunLayout(output_dir).read_log(run_id)
    except OSError as exc:
        log.warning("cannot read the kept log of run %s: %s", run_id, exc)
        return None


class JobRecords:
    """Keeps ended runs' logs and deletes their Ray records after ``retention_seconds``.

    ``clock`` gives epoch milliseconds (Ray's ``end_time`` base); tests pass their own.
    """

    def __init__(self, store: Store, launcher: L.JobLauncher, *, retention_seconds: float,
                 interval_seconds: float = 30.0, clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.store = store
        self.launcher = launcher
        self.retention_ms = int(retention_seconds * 1000)
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._background = Periodic(self.tidy, interval_seconds, "rayproc-job-records")

    def start(self) -> None:
        """Tidy in the background, every ``interval_seconds``."""
        self._background.start()

    def close(self) -> None:
        self._background.close()

    def tidy(self) -> tuple[int, int]:
        """One pass over Ray's rayproc jobs: ``(logs kept, records deleted)``."""
        try:
            jobs = self.launcher.states()
        except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound):
            return 0, 0
        kept = deleted = 0
        for run_id, state in jobs.items():
            if not state.is_terminal() or state.task_id is None:
                continue
            rec = self.store.get_task(state.task_id)
            if rec is None:
                continue  # the task was deleted, and its work path with it: nowhere to keep the log
            layout = RunLayout(rec.output_dir)
            try:
                kept_already = layout.run_log(run_id).exists()
            except OSError:  # the work path's bucket cannot be asked now: try again next pass
                continue
            if not kept_already:
                if not self._keep(layout, run_id):
                    continue
                kept += 1
            ended = state.end_time_ms
            if ended is not None and self._clock() - ended >= self.retention_ms and self._delete(run_id):
                deleted += 1
        return kept, deleted

    def _keep(self, layout: RunLayout, run_id: str) -> bool:
        try:
            text = self.launcher.logs(run_id)
        except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound):
            return False
        data = text.encode("utf-8", errors="replace")
        if len(data) > MAX_KEPT_LOG_BYTES:
            data = _CUT_NOTE.encode() + data[-MAX_KEPT_LOG_BYTES:]
        try:
            layout.runs_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(layout.run_log(run_id), data.decode("utf-8", errors="replace"))
        except OSError as exc:
            log.warning("cannot keep the log of run %s under %s: %s", run_id, layout.runs_dir, exc)
            return False
        return True

    def _delete(self, run_id: str) -> bool:
        try:
            return self.launcher.delete(run_id)
        except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound) as exc:
            log.warning("cannot delete the Ray job record of run %s: %s", run_id, exc)
            return False
