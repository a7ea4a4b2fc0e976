"""The task database (SQLite file or PostgreSQL, shared by the service and the job runner; see jobs/db.py).

The API replicas and the job drivers open the same database. Every state change
that can race (a stop against a completion, a resume against a late PENDING
job starting) is one conditional UPDATE keyed on the task's current run, so
whichever side loses simply changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.db import Database
from jobs.status import TaskStatus
from rayproc_contract.query import ListQuery

#: A version series: the tasks of one type over the same source and dataset version in one project's workspace.
#: Its newest task (by create_time, then task_id) is current. Only creating or deleting a task changes a series.
# is_current is stored because the list filters and counts by it; version_count is the series' size, which
# triggers keep in series_counts (see jobs/migrations/versions/0002), so no create or delete rewrites a series.
SERIES_KEY = ("project_id", "workspace_id", "task_type", "source_type", "source", "version_id")

# The admission queue, on the same rows. A run is *queued* (queued = 1: waiting for a slot, not before
# not_before), then *submitting* (claimed by a dispatcher: queued = 0, submitted = 0, submit_time = the claim) and
# then *submitted* (Ray accepted its job). Queue order: the task's priority (higher first), then queued_time, then
# run_id. attempt counts the runs started automatically after an infrastructure failure: 1 for a run a person
# asked for (create, resume).
# A run handed to Ray that has not ended: its task is active and its run has left the queue.
_RUNNING = ("FROM tasks t JOIN runs r ON r.run_id = t.current_run "
            "WHERE t.status IN (?, ?) AND r.queued = 0")
_QUEUE_ORDER = "t.priority DESC, r.queued_time ASC, r.run_id ASC"

_JSON_COLUMNS = ("data_source", "inputs", "template", "work_path", "execution", "result")
_ACTIVE = (int(TaskStatus.INITIALIZED), int(TaskStatus.RUNNING))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TaskRecord:
    task_id: str
    project_id: str
    workspace_id: str
    name: str
    description: str
    task_type: str
    source_type: str
    source: str
    version_id: str | None
    version_name: str | None
    data_source: dict | None
    inputs: list[dict]
    template: dict
    work_path: dict
    input_root: str
    output_dir: str
    execution: dict
    status: TaskStatus
    error_type: str | None
    error_msg: str | None
    result: dict | None
    create_time: int
    update_time: int
    run_start_ms: int | None
    elapsed_ms: int
    total_count: int | None
    processed_count: int
    failed_count: int
    current_run: str
    stop_requested: bool
    is_current: bool = True
    version_count: int = 1
    priority: int = 0
    runs: list[dict] = field(default_factory=list)
    #: 1-based place in the admission queue while the current run waits there; filled by the service's reads.
    queue_position: int | None = None

    def duration_seconds(self, now: int | None = None) -> int:
        elapsed = self.elapsed_ms
        if self.status == TaskStatus.RUNNING and self.run_start_ms is not None:
            elapsed += max(0, (now or now_ms()) - self.run_start_ms)
        return int(round(elapsed / 1000))

    def completion_percentage(self) -> float:
        if self.status == TaskStatus.COMPLETED:
            return 100.0
        if not self.total_count:
            return 0.0
        done = self.processed_count + self.failed_count
        return round(min(100.0, 100.0 * done / self.total_count), 2)


_SORT_COLUMNS = {"create_time": "create_time", "name": "name", "duration_seconds": "elapsed_ms"}


class Store(Database):
    def __init__(self, target: str | Path, clock: Callable[[], int] = now_ms) -> None:
        """``target``: the SQLite file's path, or a ``postgresql://`` URL."""
        self._clock = clock
        super().__init__(target)

    # ----- reads -------------------------------------------------------------------------

    def get_task(self, task_id: str, project_id: str | None = None, with_runs: bool = False) -> TaskRecord | None:
        with self._snapshot() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            if row is None or (project_id is not None and row["project_id"] != project_id):
                return None
            rec = _records(conn, [row])[0]
            if with_runs:
                rec.runs = [dict(r) for r in conn.execute(
                    "SELECT * FROM runs WHERE task_id = ? ORDER BY seq", (task_id,))]
            return rec

    def list_tasks(self, project_id: str, q: ListQuery) -> tuple[int, list[TaskRecord]]:
        where, args = ["t.project_id = ?", "t.workspace_id = ?"], [project_id, q.workspace_id]
        if q.status is not None:
            where.append("t.status = ?")
            args.append(q.status)
        for column, value in (("task_type", q.task_type), ("source", q.source), ("source_type", q.source_type)):
            if value is not None:
                where.append(f"t.{column} = ?")
                args.append(value)
        if q.task_name:
            where.append(f"t.name {self._like()} ? ESCAPE '\\'")
            escaped = q.task_name.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            args.append(f"%{escaped}%")
        if q.version_ids:
            where.append(f"t.version_id IN ({','.join('?' * len(q.version_ids))})")
            args.extend(q.version_ids)
        if q.query_current:
            where.append("t.is_current = 1")  # literally so: it selects the partial index tasks_current
        clause = " AND ".join(where)
        direction = "ASC" if q.order == "asc" else "DESC"
        order = f"t.{_SORT_COLUMNS[q.sort_by]} {direction}, t.task_id {direction}"
        # The total of a list filtered only by status and/or query_current is kept in task_counts, each task's
        # version_count in series_counts (see jobs/migrations/versions/0002); other filters count their rows.
        if (q.task_type is None and q.source is None and q.source_type is None and not q.task_name
                and not q.version_ids):
            count_sql, count_args = _kept_count_sql(project_id, q.workspace_id, q.status, q.query_current)
        else:
            count_sql, count_args = f"SELECT COUNT(*) FROM tasks t WHERE {clause}", args
        # One statement (one snapshot, one round trip): the page, each row's series size and the total.
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT t.*, COALESCE(s.n, 0) AS version_count, ({count_sql}) AS list_total "
                f"FROM tasks t LEFT JOIN series_counts s ON {_SERIES_JOIN} "
                f"WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*count_args, *args, q.limit, q.page * q.limit]).fetchall()
            if rows:
                return int(rows[0]["list_total"]), [_record(row, int(row["version_count"])) for row in rows]
            # An empty page (past the end) still answers the total.
            return int(conn.execute(count_sql, count_args).fetchone()[0]), []

    def active_tasks(self) -> list[TaskRecord]:
        with self._snapshot() as conn:
            rows = conn.execute("SELECT * FROM tasks WHERE status IN (?, ?)", _ACTIVE).fetchall()
            return _records(conn, rows)

    def handed_tasks(self) -> list[TaskRecord]:
        """Active tasks whose current run is not waiting in the admission queue: those Ray may hold a job of.
        (A queue of thousands is left in the database, not loaded.)"""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT t.* FROM tasks t LEFT JOIN runs r ON r.run_id = t.current_run "
                "WHERE t.status IN (?, ?) AND NOT (t.status = ? AND COALESCE(r.queued, 0) = 1)",
                (*_ACTIVE, int(TaskStatus.INITIALIZED))).fetchall()
            return _records(conn, rows)

    def runs_for(self, task_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {t: [] for t in task_ids}
        if not task_ids:
            return out
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs WHERE task_id IN ({','.join('?' * len(task_ids))}) ORDER BY task_id, seq",
                task_ids).fetchall()
        for r in rows:
            out[r["task_id"]].append(dict(r))
        return out

    # ----- service-side writes -----------------------------------------------------------

    def insert_task(self, row: dict[str, Any], *, within: Callable[[Any], None] | None = None) -> None:
        """Insert a task with its first run queued. ``within(conn)`` runs first in the same write transaction
        (a create's idempotency key is taken there): whatever it raises rolls the whole insert back.

        Inserts from concurrent creates share one commit (:meth:`Database._grouped_tx`), each in its own
        savepoint: a create's failure undoes only its own rows."""
        ts = self._clock()
        values = {**row, "create_time": ts, "update_time": ts, "status": int(TaskStatus.INITIALIZED)}
        for col in _JSON_COLUMNS:
            if col in values and values[col] is not None:
                values[col] = json.dumps(values[col], sort_keys=True)
        cols = ", ".join(values)
        marks = ", ".join("?" * len(values))
        series = tuple(row.get(column) for column in SERIES_KEY)

        def insert(conn: Any) -> None:
            if within is not None:
                within(conn)
            was_current = _newest(conn, series)
            conn.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", list(values.values()))
            _mark_newest(conn, series, (row["task_id"], was_current))
            _queue_run(conn, row["task_id"], row["current_run"], 1, ts)

        self._grouped_tx(insert)

    def mark_submitted(self, run_id: str) -> None:
        """Ray accepted the run's job: from now on reconciliation may judge it by Ray's status."""
        with self._tx() as conn:
            conn.execute("UPDATE runs SET submitted = 1, queued = 0 WHERE run_id = ?", (run_id,))

    def run_submitted(self, run_id: str) -> tuple[bool, int]:
        """(whether Ray accepted the run, when the submission started in epoch ms)."""
        with self._connect() as conn:
            row = conn.execute("SELECT submitted, submit_time FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return (bool(row["submitted"]), int(row["submit_time"])) if row else (False, 0)

    def delete_task(self, task_id: str) -> bool:
        """Delete a finished task, or one whose run still waits in the queue (nothing of it runs).
        Returns False if it is running (or about to: a dispatcher claimed its run)."""
        with self._tx() as conn:
            series = _series_of(conn, task_id)
            cur = conn.execute(
                "DELETE FROM tasks WHERE task_id = ? AND (status NOT IN (?, ?) OR (status = ? AND "
                "(SELECT queued FROM runs WHERE run_id = tasks.current_run) = 1))",
                (task_id, *_ACTIVE, int(TaskStatus.INITIALIZED)))
            if cur.rowcount:
                conn.execute("DELETE FROM runs WHERE task_id = ?", (task_id,))
                _mark_newest(conn, series, ())
            return bool(cur.rowcount)

    def stop_if_not_started(self, task_id: str) -> bool:
        """Stop a task whose run has not claimed it yet (Ray may hold the job PENDING)."""
        ts = self._clock()
        with self._tx() as conn:
            return _stop_if_not_started(conn, task_id, ts)

    def request_stop(self, task_id: str) -> bool:
        """Flag a running task for stopping; the runner finishes it as stopped."""
        ts = self._clock()
        with self._tx() as conn:
            return _request_stop(conn, task_id, ts)

    def stop(self, task_id: str) -> TaskStatus | None:
        """:meth:`stop_if_not_started`, else :meth:`request_stop`, in one write transaction: ``STOPPED`` if the
        task was stopped at once, ``RUNNING`` if its runner was flagged to stop, None if it was neither."""
        ts = self._clock()
        with self._tx() as conn:
            if _stop_if_not_started(conn, task_id, ts):
                return TaskStatus.STOPPED
            return TaskStatus.RUNNING if _request_stop(conn, task_id, ts) else None

    def begin_new_run(self, task_id: str, run_id: str, resumable: tuple[TaskStatus, ...]) -> bool:
        """Point the task at a new run (resume), queued for admission. Only from one of ``resumable``."""
        ts = self._clock()
        marks = ",".join("?" * len(resumable))
        with self._tx() as conn:
            cur = conn.execute(
                f"UPDATE tasks SET status = ?, current_run = ?, stop_requested = 0, error_type = NULL, "
                f"error_msg = NULL, result = NULL, update_time = ? WHERE task_id = ? AND status IN ({marks})",
                (int(TaskStatus.INITIALIZED), run_id, ts, task_id, *[int(s) for s in resumable]),
            )
            if not cur.rowcount:
                return False
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs WHERE task_id = ?", (task_id,)).fetchone()[0]
            _queue_run(conn, task_id, run_id, seq, ts)
            return True

    def abandon_run(self, task_id: str, run_id: str, previous: TaskRecord) -> None:
        """Undo :meth:`begin_new_run` when the job could not be submitted."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE tasks SET status = ?, current_run = ?, stop_requested = ?, error_type = ?, error_msg = ?, "
                "result = ? WHERE task_id = ? AND current_run = ?",
                (int(previous.status), previous.current_run, int(previous.stop_requested), previous.error_type,
                 previous.error_msg, json.dumps(previous.result) if previous.result is not None else None,
                 task_id, run_id),
            )
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def remove_unsubmitted(self, task_id: str) -> None:
        """Undo :meth:`insert_task` when the first job could not be submitted."""
        with self._tx() as conn:
            series = _series_of(conn, task_id)
            conn.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
            conn.execute("DELETE FROM runs WHERE task_id = ?", (task_id,))
            _mark_newest(conn, series, ())

    # ----- runner-side writes (also used by reconciliation) ------------------------------

    def claim_run(self, task_id: str, run_id: str) -> bool:
        """The runner starts work only if its run is still current and nobody stopped it."""
        ts = self._clock()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE tasks SET status = ?, run_start_ms = ?, update_time = ? "
                "WHERE task_id = ? AND current_run = ? AND status = ? AND stop_requested = 0",
                (int(TaskStatus.RUNNING), ts, ts, task_id, run_id, int(TaskStatus.INITIALIZED)),
            )
            if cur.rowcount:
                conn.execute("UPDATE runs SET start_time = ? WHERE run_id = ?", (ts, run_id))
            return bool(cur.rowcount)

    def record_progress(self, task_id: str, run_id: str, *, total: int, processed: int, failed: int,
                        computed_in_run: int) -> bool:
        """Returns whether a stop has been requested (so the runner can wind down)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE tasks SET total_count = ?, processed_count = ?, failed_count = ?, update_time = ? "
                "WHERE task_id = ? AND current_run = ?",
                (total, processed, failed, self._clock(), task_id, run_id),
            )
            conn.execute("UPDATE runs SET items_computed = ? WHERE run_id = ?", (computed_in_run, run_id))
            row = conn.execute(
                "SELECT stop_requested, current_run FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return row is None or bool(row["stop_requested"]) or row["current_run"] != run_id

    def finish_run(self, task_id: str, run_id: str, status: TaskStatus, *, result: dict | None = None,
                   error_type: str | None = None, error_msg: str | None = None, message: str | None = None,
                   retry: Retry | None = None) -> bool:
        """Move the task from active to ``status`` if ``run_id`` is still its run. Idempotent.

        ``retry``: a failure it covers queues the task's next run in the same transaction (as :meth:`retry_run`
        would), so no reader ever sees the task failed between its settle and its retry."""
        if not status.is_terminal():
            raise ValueError(f"finish_run needs a terminal status, got {status!r}")
        ts = self._clock()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE tasks SET status = ?, result = ?, error_type = ?, error_msg = ?, update_time = ?, "
                "elapsed_ms = elapsed_ms + CASE WHEN run_start_ms IS NULL OR run_start_ms > ? THEN 0 "
                "ELSE ? - run_start_ms END, run_start_ms = NULL "
                "WHERE task_id = ? AND current_run = ? AND status IN (?, ?)",
                (int(status), json.dumps(result, sort_keys=True) if result is not None else None, error_type,
                 error_msg, ts, ts, ts, task_id, run_id, *_ACTIVE),
            )
            conn.execute(
                "UPDATE runs SET outcome = COALESCE(outcome, ?), end_time = COALESCE(end_time, ?), "
                "message = COALESCE(message, ?) WHERE run_id = ?",
                (status.label, ts, message or error_msg, run_id),
            )
            if cur.rowcount and retry is not None and status == TaskStatus.FAILED:
                _queue_retry(conn, task_id, run_id, retry, ts)
            return bool(cur.rowcount)

    # ----- the admission queue (the service's dispatcher) ---------------------------------

    def run_phase(self, run_id: str) -> tuple[str, int]:
        """(``queued``, ``submitting`` or ``submitted``, and since when in epoch ms) for one run.

        A queued run's time is when it was queued; a submitting run's, when a dispatcher claimed it."""
        with self._connect() as conn:
            row = conn.execute("SELECT queued, submitted, submit_time, queued_time FROM runs WHERE run_id = ?",
                               (run_id,)).fetchone()
        if row is None:
            return "submitting", 0
        if row["submitted"]:
            return "submitted", int(row["submit_time"])
        if row["queued"]:
            return "queued", int(row["queued_time"] or row["submit_time"])
        return "submitting", int(row["submit_time"])

    def running_counts(self) -> tuple[int, dict[str, int]]:
        """Runs handed to Ray and not ended: in all, and by project."""
        with self._connect() as conn:
            return _running_counts(conn)

    def claim_queued(self, *, max_running: int, max_per_project: int | None) -> QueuedRun | None:
        """Take the first queued run that may start now without passing a limit, and mark it submitting.

        Counting and claiming are one write transaction, so two dispatchers (two replicas, or a service and
        its successor) can never both take a run, nor together pass a limit. While the limit is reached (most
        of a burst) a plain read says so first, without the write lock that every create needs too."""
        now = self._clock()
        with self._connect() as conn:
            if _running_counts(conn)[0] >= max_running:
                return None
        with self._tx() as conn:
            running, by_project = _running_counts(conn)
            if running >= max_running:
                return None
            rows = conn.execute(
                "SELECT r.run_id, r.seq, t.task_id, t.project_id, t.task_type FROM runs r "
                "JOIN tasks t ON t.current_run = r.run_id "
                f"WHERE r.queued = 1 AND t.status = ? AND r.not_before <= ? ORDER BY {_QUEUE_ORDER}",
                (int(TaskStatus.INITIALIZED), now))
            for row in rows:
                if max_per_project is not None and by_project.get(row["project_id"], 0) >= max_per_project:
                    continue
                conn.execute("UPDATE runs SET queued = 0, submit_time = ? WHERE run_id = ? AND queued = 1",
                             (now, row["run_id"]))
                return QueuedRun(row["task_id"], row["project_id"], row["task_type"], row["run_id"], row["seq"])
            return None

    def requeue(self, run: QueuedRun, new_run_id: str, not_before: int) -> bool:
        """Put a claimed run whose submission failed back in the queue under a fresh id.

        Ray may have accepted the job after all (the answer was lost) and never takes an id twice; under a new
        id, a job that did start is no longer the task's run and exits without work. Keeps the queue place."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE tasks SET current_run = ? WHERE task_id = ? AND current_run = ? AND status = ?",
                               (new_run_id, run.task_id, run.run_id, int(TaskStatus.INITIALIZED)))
            if not cur.rowcount:
                return False
            conn.execute("UPDATE runs SET run_id = ?, queued = 1, not_before = ? WHERE run_id = ? AND submitted = 0",
                         (new_run_id, not_before, run.run_id))
            return True

    def queue_positions(self, run_ids: Iterable[str]) -> dict[str, int]:
        """1-based places in the queue (in the order runs leave it) of those of ``run_ids`` that are queued."""
        wanted = set(run_ids)
        if not wanted:
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT r.run_id FROM runs r JOIN tasks t ON t.current_run = r.run_id "
                f"WHERE r.queued = 1 AND t.status = ? ORDER BY {_QUEUE_ORDER}", (int(TaskStatus.INITIALIZED),))
            return {row["run_id"]: place for place, row in enumerate(rows, 1) if row["run_id"] in wanted}

    def failed_runs(self, error_types: Iterable[str], max_attempts: int) -> list[tuple[str, str, int]]:
        """(task id, run id, attempt) of failed tasks that failed with one of ``error_types`` on a run whose
        attempt is below ``max_attempts`` and that nobody asked to stop."""
        types = list(error_types)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT t.task_id, r.run_id, r.attempt FROM tasks t JOIN runs r ON r.run_id = t.current_run "
                f"WHERE t.status = ? AND t.stop_requested = 0 AND t.error_type IN ({','.join('?' * len(types))}) "
                "AND r.attempt < ?", (int(TaskStatus.FAILED), *types, max_attempts)).fetchall()
        return [(r["task_id"], r["run_id"], int(r["attempt"])) for r in rows]

    def retry_run(self, task_id: str, failed_run: str, run_id: str, *, error_types: Iterable[str],
                  max_attempts: int, not_before: int) -> bool:
        """Queue a new run of a task whose run ``failed_run`` failed with one of ``error_types``, if it is still
        so, nobody asked to stop it and its attempts are not used up. Whoever retries first wins; the rest
        change nothing."""
        plan = Retry(tuple(error_types), max_attempts, run_id=lambda _: run_id, not_before=lambda _: not_before)
        ts = self._clock()
        with self._tx() as conn:
            return _queue_retry(conn, task_id, failed_run, plan, ts)


def _kept_count_sql(project_id: str, workspace_id: str, status: int | None, current_only: bool
                    ) -> tuple[str, list]:
    """The statement (and its values) reading the tasks of a workspace (of one status, only current ones) as the
    triggers on ``tasks`` keep them counted: at most ten rows of ``task_counts``."""
    where, args = ["task_counts.project_id = ?", "task_counts.workspace_id = ?"], [project_id, workspace_id]
    if status is not None:
        where.append("task_counts.status = ?")
        args.append(int(status))
    if current_only:
        where.append("task_counts.is_current = 1")
    return f"SELECT COALESCE(SUM(task_counts.n), 0) FROM task_counts WHERE {' AND '.join(where)}", args


def _kept_count(conn: Any, project_id: str, workspace_id: str, status: int | None, current_only: bool) -> int:
    sql, args = _kept_count_sql(project_id, workspace_id, status, current_only)
    return int(conn.execute(sql, args).fetchone()[0])


def _stop_if_not_started(conn: Any, task_id: str, ts: int) -> bool:
    cur = conn.execute(
        "UPDATE tasks SET status = ?, stop_requested = 1, update_time = ? WHERE task_id = ? AND status = ?",
        (int(TaskStatus.STOPPED), ts, task_id, int(TaskStatus.INITIALIZED)),
    )
    if cur.rowcount:
        conn.execute(
            "UPDATE runs SET outcome = 'stopped', end_time = ?, message = 'stopped before it started', queued = 0 "
            "WHERE run_id = (SELECT current_run FROM tasks WHERE task_id = ?)", (ts, task_id))
    return bool(cur.rowcount)


def _request_stop(conn: Any, task_id: str, ts: int) -> bool:
    cur = conn.execute("UPDATE tasks SET stop_requested = 1, update_time = ? WHERE task_id = ? AND status = ?",
                       (ts, task_id, int(TaskStatus.RUNNING)))
    return bool(cur.rowcount)


def _series_of(conn: Any, task_id: str) -> tuple | None:
    row = conn.execute(f"SELECT {', '.join(SERIES_KEY)} FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return tuple(row) if row is not None else None


def _in_series(series: tuple) -> tuple[str, tuple]:
    """The condition (and its values) that selects one series' rows through its index: a NULL version_id is
    a series of its own (as in a window's PARTITION BY), matched with IS NULL, which both backends index."""
    clauses = [f"{column} IS NULL" if value is None else f"{column} = ?" for column, value in zip(SERIES_KEY, series)]
    return " AND ".join(clauses), tuple(value for value in series if value is not None)


def _newest(conn: Any, series: tuple) -> str | None:
    clause, args = _in_series(series)
    row = conn.execute(f"SELECT task_id FROM tasks WHERE {clause} ORDER BY create_time DESC, task_id DESC "
                       "LIMIT 1", args).fetchone()
    return row[0] if row is not None else None


def _mark_newest(conn: Any, series: tuple | None, others: Iterable[str | None]) -> None:
    """Make the series' newest task current and ``others`` (those that may have been) not.

    Called in the transaction that created or deleted a task of the series, so at most two rows change."""
    if series is None:
        return
    newest = _newest(conn, series)
    ids = [t for t in {newest, *others} if t is not None]
    if ids:
        conn.execute("UPDATE tasks SET is_current = CASE WHEN task_id = ? THEN 1 ELSE 0 END "
                     f"WHERE task_id IN ({','.join('?' * len(ids))})",
                     (newest, *ids))


def _records(conn: Any, rows: list) -> list[TaskRecord]:
    """Records for ``rows``, each with its series' size as the triggers on ``tasks`` keep it in
    ``series_counts``: one statement of key reads for every series among ``rows``, in the caller's snapshot."""
    keys = list(dict.fromkeys(_series_count_key(row) for row in rows))
    counts: dict[tuple, int] = {}
    for start in range(0, len(keys), _SERIES_PER_STATEMENT):
        batch = keys[start:start + _SERIES_PER_STATEMENT]
        # One key lookup per series, joined (a row-value IN list is a scan for SQLite's planner on a small table).
        one = (f"SELECT {', '.join(_SERIES_COUNT_KEY)}, n FROM series_counts WHERE "
               + " AND ".join(f"{column} = ?" for column in _SERIES_COUNT_KEY))
        found = conn.execute(" UNION ALL ".join([one] * len(batch)),
                             [value for key in batch for value in key]).fetchall()
        counts.update({tuple(r[:-1]): int(r[-1]) for r in found})
    return [_record(row, counts.get(_series_count_key(row), 0)) for row in rows]


#: A task row ``t`` joined to its series' size ``s``.
_SERIES_JOIN = (" AND ".join(f"s.{column} = t.{column}" for column in SERIES_KEY[:-1])
                + " AND s.version = COALESCE('=' || t.version_id, '')")
#: series_counts' key: the series, its version_id as ``version`` ('' for none, else '=' and the id: a NULL
#: could not be a key on both backends).
_SERIES_COUNT_KEY = (*SERIES_KEY[:-1], "version")
#: Series read by one statement (a page holds at most 100 tasks; SQLite takes up to 32,766 values).
_SERIES_PER_STATEMENT = 100


def _series_count_key(row) -> tuple:
    *head, version_id = (row[column] for column in SERIES_KEY)
    return (*head, "" if version_id is None else f"={version_id}")


def _record(row, version_count: int) -> TaskRecord:
    data = dict(row, version_count=version_count)
    data.pop("list_total", None)
    for col in _JSON_COLUMNS:
        if data.get(col) is not None:
            data[col] = json.loads(data[col])
    data["status"] = TaskStatus(data["status"])
    data["stop_requested"] = bool(data["stop_requested"])
    data["is_current"] = bool(data["is_current"])
    return TaskRecord(**data)


@dataclass(frozen=True)
class QueuedRun:
    """A run a dispatcher claimed from the queue, with what its submission needs."""

    task_id: str
    project_id: str
    task_type: str
    run_id: str
    seq: int


def _queue_run(conn: Any, task_id: str, run_id: str, seq: int, ts: int, *, attempt: int = 1,
               not_before: int = 0) -> None:
    conn.execute(
        "INSERT INTO runs (run_id, task_id, seq, submit_time, queued, queued_time, not_before, attempt) "
        "VALUES (?, ?, ?, ?, 1, ?, ?, ?)", (run_id, task_id, seq, ts, ts, not_before, attempt))


@dataclass(frozen=True)
class Retry:
    """Which failed runs are queued again automatically, and how (:meth:`Store.finish_run`, :meth:`Store.retry_run`)."""

    #: The failures (error types) that are retried.
    error_types: tuple[str, ...]
    #: Runs a task may have in a row, the first included.
    max_attempts: int
    #: The new run's id, from its number among the task's runs (1-based).
    run_id: Callable[[int], str]
    #: When the new run may start (epoch ms), from the number of the attempt that failed.
    not_before: Callable[[int], int]


def _queue_retry(conn: Any, task_id: str, failed_run: str, plan: Retry, ts: int) -> bool:
    """Queue the next run of a task whose run ``failed_run`` failed with one of the plan's error types, if it is
    still so, nobody asked to stop it and its attempts are not used up. Inside a write transaction."""
    row = conn.execute("SELECT attempt, seq FROM runs WHERE run_id = ?", (failed_run,)).fetchone()
    if row is None or row["attempt"] >= plan.max_attempts or not plan.error_types:
        return False
    attempt, seq = int(row["attempt"]), int(row["seq"]) + 1
    run_id = plan.run_id(seq)
    types = plan.error_types
    cur = conn.execute(
        "UPDATE tasks SET status = ?, current_run = ?, error_type = NULL, error_msg = NULL, result = NULL, "
        f"update_time = ? WHERE task_id = ? AND current_run = ? AND status = ? AND stop_requested = 0 "
        f"AND error_type IN ({','.join('?' * len(types))})",
        (int(TaskStatus.INITIALIZED), run_id, ts, task_id, failed_run, int(TaskStatus.FAILED), *types))
    if not cur.rowcount:
        return False
    _queue_run(conn, task_id, run_id, seq, ts, attempt=attempt + 1, not_before=plan.not_before(attempt))
    return True


def _running_counts(conn: Any) -> tuple[int, dict[str, int]]:
    rows = conn.execute(f"SELECT t.project_id, COUNT(*) AS n {_RUNNING} GROUP BY t.project_id", _ACTIVE).fetchall()
    by_project = {r["project_id"]: int(r["n"]) for r in rows}
    return sum(by_project.values()), by_project
