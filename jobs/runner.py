"""The job runner: the entrypoint of every Ray job rayproc submits.

    python -m jobs.runner --db DB --task-id ID --run-id SUBMISSION_ID [--allowed-root R]... [--plugin M]...

One run of a task:

1. claims the task (only if this run is still the task's current run and nobody
   stopped it while Ray held the job PENDING);
2. lists the input items once and freezes the list in a manifest, so a resumed
   run sees exactly the items the first run saw;
3. splits the items into chunks and runs each chunk as a Ray task (at most a few
   in flight, so memory stays flat whatever the item count); every finished chunk
   is committed atomically as a part file and counted as progress;
4. on SIGTERM (Ray's ``stop_job``) or a stop flag in the database it submits no
   more chunks, lets the ones in flight finish and commits them, and records the
   task as stopped: nothing computed is thrown away;
5. when every chunk is committed, assembles the outputs and records ``result``.

A resumed run finds the committed part files and processes only the rest.
Every exit path records an outcome; if the process is killed outright the
service's reconciliation sees Ray's FAILED status and records that instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import traceback
from collections.abc import Sequence

from jobs.db import database_from
from jobs.run_state import claim
from jobs.signals import install_stop_handler
from jobs.status import ErrorType, TaskFailure, TaskStatus
from jobs.store import Store

log = logging.getLogger("rayproc.runner")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jobs.runner", description="Run one rayproc task run.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="the SQLite file")
    where.add_argument("--db-env", help="the environment variable holding the PostgreSQL URL")
    p.add_argument("--task-id", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--allowed-root", action="append", default=[])
    p.add_argument("--plugin", action="append", default=[])
    p.add_argument("--ray-address", default=None, help="GCS address of the cluster to run chunks on.")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parse(argv)
    stop_event = threading.Event()
    install_stop_handler(stop_event)
    store = Store(database_from(args.db, args.db_env))
    task = claim(store, args.task_id, args.run_id)
    if task is None:
        log.warning("run %s is no longer current for task %s (stopped, superseded or deleted): nothing to do",
                    args.run_id, args.task_id)
        return 0
    try:
        # numpy, Pillow, the operators and Ray load only now: the claim above takes ~30 ms from process start.
        from jobs.execution import RunContext, execute

        ctx = RunContext(store, task, args.run_id, tuple(args.allowed_root), tuple(args.plugin), stop_event,
                         ray_address=args.ray_address)
        outcome = execute(ctx)
        log.info("task %s run %s finished: %s", args.task_id, args.run_id, outcome.label)
        return 0
    except TaskFailure as exc:
        log.error("task %s failed (%s): %s", args.task_id, exc.error_type.value, exc.message)
        store.finish_run(args.task_id, args.run_id, TaskStatus.FAILED, error_type=exc.error_type.value,
                         error_msg=exc.message)
        return 1
    except BaseException as exc:  # record an outcome whatever happened
        traceback.print_exc()
        if stop_event.is_set():  # e.g. Ray's own SIGTERM handler exited while connecting to the cluster
            store.finish_run(args.task_id, args.run_id, TaskStatus.STOPPED, message=f"stopped: {exc!r}")
            return 0
        # The message is for the task's users: the traceback above (the run's log) has the details, which
        # may name files of the service such as its database.
        store.finish_run(args.task_id, args.run_id, TaskStatus.FAILED, error_type=ErrorType.INTERNAL_ERROR.value,
                         error_msg=f"internal error in the job runner ({type(exc).__name__}); the log of run "
                                   f"{args.run_id} has the details")
        return 1


if __name__ == "__main__":  # a job's entrypoint: the driver process
    sys.exit(main())
