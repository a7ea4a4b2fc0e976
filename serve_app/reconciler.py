"""Settling task records against Ray: the one place that decides a run ended without recording it.

A runner records its own outcome before it exits. A record that is still active after its Ray job
ended therefore belongs to a runner that never got to record one (killed, its node lost, the cluster
restarted), and the reconciler finishes it: stopped if a stop was asked for or Ray stopped it, else
failed with ``job_died`` and Ray's message, its retry queued in the same transaction by the dispatcher's
``retry`` plan (``on_failure`` then wakes the dispatcher). Runs still waiting in the admission queue are not
Ray's yet and are left alone. It runs on demand (the commands ask it before answering about an active record)
and in a background pass, so records settle even when nobody reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from jobs import launcher as L
from jobs.status import ErrorType, TaskStatus
from jobs.store import Retry, Store, TaskRecord, now_ms
from serve_app.background import Periodic
from serve_app.ray_errors import ray_reason

log = logging.getLogger("rayproc.service")

#: A run not yet accepted by Ray after this long was abandoned by a service that stopped mid-submission.
UNSUBMITTED_GRACE_MS = 60_000
#: Progress this recent shows a running task's runner alive (it records progress several times a second).
FRESH_PROGRESS_MS = 1_000
#: Up to this many runs handed to Ray, a pass asks about each run; beyond, it asks for Ray's whole job list once.
ASK_EACH_UP_TO = 8


class Reconciler:
    """Settles active records against Ray's view of their current run.

    ``clock`` gives epoch milliseconds (the store's time base); tests pass their own. ``read_launcher``
    asks Ray on behalf of reads (a short deadline: a read never waits long on Ray, and a record Ray could
    not be asked about is settled by the background pass); the background pass and commands use ``launcher``.
    """

    def __init__(self, store: Store, launcher: L.JobLauncher, *, interval_seconds: float,
                 clock: Callable[[], int] = now_ms, on_failure: Callable[[], None] | None = None,
                 retry: Callable[[str], Retry] | None = None, read_launcher: L.JobLauncher | None = None) -> None:
        self.store = store
        self._on_failure = on_failure
        self._retry = retry
        self.launcher = launcher
        self.read_launcher = read_launcher or launcher
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._background = Periodic(self.reconcile_all, interval_seconds, "rayproc-reconciler")

    def settle_if_stale(self, rec: TaskRecord) -> bool:
        """Before a read answers: settle ``rec`` if it is active and its runner is not visibly alive.
        True if the record changed (read it again)."""
        return not rec.status.is_terminal() and not self.reporting(rec) and self._reconcile(rec, self.read_launcher)

    def reporting(self, rec: TaskRecord) -> bool:
        """A running task whose runner recorded progress just now is alive: asking Ray too would only load
        its dashboard once per poll of every client. A runner that dies stops reporting, and is asked about
        within ``FRESH_PROGRESS_MS``."""
        return rec.status == TaskStatus.RUNNING and self._clock() - rec.update_time < FRESH_PROGRESS_MS

    def reconcile(self, rec: TaskRecord) -> bool:
        """Settle one active record against Ray's view of its current run. True if it changed."""
        return self._reconcile(rec, self.launcher)

    def _reconcile(self, rec: TaskRecord, launcher: L.JobLauncher, *, quiet: bool = True) -> bool:
        """``quiet``: Ray being unreachable changes nothing and says nothing; else it raises
        :class:`~jobs.launcher.RayUnavailable`."""
        phase, since = self.store.run_phase(rec.current_run)
        if phase == "queued":
            return False  # waiting for a slot: Ray has not heard of it, and that is no failure
        if phase == "submitting" and rec.status == TaskStatus.INITIALIZED:
            # Being submitted right now; only a submission abandoned by a crashed service is settled. (A task
            # its runner claimed was submitted, whatever its run's row says: Ray's status judges it.)
            if self._clock() - since < UNSUBMITTED_GRACE_MS:
                return False
            return self._failed(rec, "the run was never submitted to Ray (the service stopped while "
                                     "submitting it)")
        try:
            state = launcher.state(rec.current_run)
        except L.RayJobNotFound:
            state = L.RayJobState("FAILED", "Ray has no record of this job (was the cluster restarted?)")
        except L.RayUnavailable:
            if quiet:
                return False  # reads must not fail because Ray is briefly away
            raise
        except L.RayJobError:
            return False
        return self._settle(rec, state)

    def reconcile_all(self, *, reading: bool = False) -> bool:
        """Settle every active record Ray holds the run of. True if any changed. ``reading``: on behalf of a
        read, with the read deadline.

        Runs waiting in the queue are left out before Ray is asked anything: they are not Ray's yet, and a
        burst of creates can queue thousands. When at most ``ASK_EACH_UP_TO`` runs are left, each is asked
        about on its own; more, and Ray's whole job list is asked for once. The list holds every job Ray ever
        ran (records are kept for a day by default), so under a long queue it grows with every run while only
        the few running need an answer; reading it on every pass took the API replica's CPU from its requests."""
        handed = self.store.handed_tasks()
        if not handed:
            return False
        launcher = self.read_launcher if reading else self.launcher
        if len(handed) <= ASK_EACH_UP_TO:
            changed = False
            for rec in handed:
                try:
                    changed |= self._reconcile(rec, launcher, quiet=False)
                except L.RayUnavailable:
                    break  # the rest would each wait out the same deadline: the next pass asks again
            return changed
        try:
            states = launcher.states()
        except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound):
            return False
        changed = False
        for rec in handed:
            state = states.get(rec.current_run)
            if state is None:
                changed |= self._reconcile(rec, launcher)  # not in the list yet, or gone: ask about it directly
            else:
                changed |= self._settle(rec, state)
        return changed

    def _settle(self, rec: TaskRecord, state: L.RayJobState) -> bool:
        if not state.is_terminal():
            return False
        # The runner records its own outcome before it exits, and Ray reports a terminal status only
        # after the exit; so if the record is still active here, the runner never recorded one.
        if state.status == "STOPPED":
            return self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.STOPPED,
                                         message="stopped by Ray")
        if state.message:
            log.warning("Ray job %s ended (%s) without recording an outcome: %s", rec.current_run, state.status,
                        state.message)
        told = ray_reason(state.message)
        reason = (f"the Ray job {rec.current_run} ended ({state.status}) without recording an outcome"
                  + (f": {told}" if told else ""))
        if rec.stop_requested:
            return self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.STOPPED, message=reason)
        return self._failed(rec, reason)

    def _failed(self, rec: TaskRecord, reason: str) -> bool:
        # Settled and, if it has attempts left, queued again in one transaction: no read sees it failed between.
        changed = self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.FAILED,
                                        error_type=ErrorType.JOB_DIED.value, error_msg=reason,
                                        retry=self._retry(rec.task_id) if self._retry is not None else None)
        if changed and self._on_failure is not None:
            self._on_failure()
        return changed

    def start(self) -> None:
        """Reconcile in the background too, every ``interval_seconds``, so records settle even when
        nobody reads them."""
        self._background.start()

    def close(self) -> None:
        self._background.close()
