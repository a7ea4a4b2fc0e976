"""Ended runs' Ray job records: their logs kept under the task's work path, then the records deleted.

Ray keeps every finished job's record for good, and its dashboard and job list slow as they grow. Once a run has
ended, its driver log (which the runner cannot read whole itself) is copied to the task's output folder
(:meth:`jobs.layout.RunLayout.run_log`), bounded in size; after ``retention_seconds`` the Ray record is deleted.
A job that has not ended is never deleted, nor one whose log could not be kept. ``logs`` answers from the kept
file, so old runs' logs outlive Ray's records (and a head restart, which loses them with the in-memory GCS).

:func:`follow_run_log` streams one run's log as it grows (``GET .../logs?follow=true``): a run still queued is
waited for, a running one is tailed through Ray's log tail (which reads the driver's file a chunk at a time, unlike
``get_job_logs``, which loads it whole: Ray issue #28336), and an ended one is read from the kept file, a chunk at
a time. The stream always ends: when the run ends, after ``max_seconds``, or after ``max_bytes``. The byte bound
is what keeps a slow reader from piling up memory: Serve's replica queues what the app sends without waiting for
the client, so the stream itself must never send more than a bounded amount.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from jobs import launcher as L
from jobs.atomic import write_atomic
from jobs.layout import RunLayout
from jobs.store import Store
from serve_app.background import Periodic

log = logging.getLogger("rayproc.service")

#: The most of a run's log kept; a longer one keeps its end (where the outcome is).
MAX_KEPT_LOG_BYTES = 1_048_576
_CUT_NOTE = "[... earlier lines of this log were not kept ...]\n"
#: The most of a log read or sent at once.
LOG_CHUNK_BYTES = 65_536
#: How often a followed run that is still queued is looked at again.
FOLLOW_POLL_SECONDS = 0.5


def kept_log(output_dir: str | Path, run_id: str) -> str | None:
    """The log kept for an ended run (in a folder or a bucket), or None if it was not kept (yet) or cannot be
    read now (then Ray's copy, if it still has one, answers)."""
    try:
        return RunLayout(output_dir).read_log(run_id)
    except OSError as exc:
        log.warning("cannot read the kept log of run %s: %s", run_id, exc)
        return None


def iter_kept_log(output_dir: str | Path, run_id: str, chunk_bytes: int = LOG_CHUNK_BYTES) -> Iterator[str] | None:
    """The kept log of an ended run, ``chunk_bytes`` at a time (never the whole file at once), or None."""
    path = RunLayout(output_dir).run_log(run_id)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None

    def chunks() -> Iterator[str]:
        with handle:
            while data := handle.read(chunk_bytes):
                yield data.decode("utf-8", errors="replace")

    return chunks()


def _note(text: str) -> str:
    return f"\n[rayproc: {text}]\n"


async def follow_run_log(store: Store, launcher: L.JobLauncher, *, task_id: str, run_id: str, output_dir: str,
                         current: bool, max_seconds: float, max_bytes: int,
                         poll_seconds: float = FOLLOW_POLL_SECONDS,
                         clock: Callable[[], float] = time.monotonic) -> AsyncIterator[str]:
    """One run's log as it grows, ending when the run ends, after ``max_seconds`` or after ``max_bytes``.

    ``current``: follow the task's current run (a run requeued under a new id while it waits is followed to the
    new id). The last chunk says why the stream ended when that was a bound, not the run's end."""
    deadline = clock() + max_seconds
    sent = 0

    def budget(chunk: str) -> tuple[str, bool]:
        nonlocal sent
        room = max_bytes - sent
        data = chunk.encode("utf-8", errors="replace")
        if len(data) <= room:
            sent += len(data)
            return chunk, False
        return data[:max(0, room)].decode("utf-8", errors="ignore") + _note(
            f"the stream ends here after {max_bytes} bytes; read the rest with GET .../logs"), True

    def kept() -> Iterator[str] | None:
        return iter_kept_log(output_dir, run_id)

    while True:  # wait for the run to leave the queue (or to end)
        chunks = await run_in_threadpool(kept)
        if chunks is not None:
            for chunk in chunks:
                text, cut = budget(chunk)
                yield text
                if cut:
                    return
            return
        rec = await run_in_threadpool(store.get_task, task_id)
        if rec is None:
            return
        if current and rec.current_run != run_id and not rec.status.is_terminal():
            run_id = rec.current_run
        phase, _ = await run_in_threadpool(store.run_phase, run_id)
        if phase == "submitted" or rec.status.is_terminal() or rec.current_run != run_id:
            break
        if clock() >= deadline:
            yield _note(f"the run is still waiting to start after {max_seconds:.0f} s; the stream ends here")
            return
        await asyncio.sleep(poll_seconds)

    if rec.status.is_terminal() or rec.current_run != run_id:
        # The run has ended in the record. Once Ray says its job has too, the log is whole: send it as a plain
        # read does, at once (Ray's tail of an ended job answers only after seconds).
        try:
            state = await run_in_threadpool(launcher.state, run_id)
            whole = await run_in_threadpool(launcher.logs, run_id) if state.is_terminal() else None
        except L.RayJobNotFound:
            return  # Ray no longer has the job (its log may be kept: a plain read finds it)
        except (L.RayUnavailable, L.RayJobError):
            whole = None  # the tail below says so
        if whole is not None:
            for start in range(0, len(whole), LOG_CHUNK_BYTES):
                text, cut = budget(whole[start:start + LOG_CHUNK_BYTES])
                yield text
                if cut:
                    return
            return

    tail = launcher.tail_logs(run_id).__aiter__()
    try:
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                yield _note(f"the stream ends here after {max_seconds:.0f} s; the run goes on")
                return
            try:
                chunk = await asyncio.wait_for(tail.__anext__(), remaining)
            except StopAsyncIteration:
                return  # Ray closes the tail once the job has ended and its whole log was sent
            except asyncio.TimeoutError:
                continue  # the deadline is checked above
            except L.RayJobNotFound:
                return  # Ray no longer has the job (its log may be kept: a plain read finds it)
            except (L.RayUnavailable, L.RayJobError):
                yield _note("Ray stopped sending the log; the stream ends here (GET .../logs reads it whole)")
                return
            text, cut = budget(chunk)
            yield text
            if cut:
                return
    finally:
        await tail.aclose()


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
