"""The service's metrics, exported twice: through Ray's metrics API and as the API's own ``GET /metrics``.

Every metric is recorded once, here, into a ``prometheus_client`` registry of this process (rendered by
``GET /metrics``, for scrapers that only see the service) and, when the process is part of a Ray cluster (a Serve
replica), into ``ray.util.metrics`` too, so it appears in Ray's Prometheus export and its Grafana dashboards
(Ray prefixes each name with ``ray_``).

Two kinds of figures:

- **Events** the service takes part in, counted at the point they happen, one line each: tasks created, runs
  stopped, resumed, retried and submitted, and API requests by route template and status.
- **Figures read from the database** by :class:`MetricsLoop`, every few seconds, so they are right across
  restarts and replicas: tasks by status and type, the queue's depth, runs handed to Ray; and, from the rows
  that changed since the last pass, the durations of ended runs (a histogram) and the items processed and
  failed (counters, by the growth of each task's counts since this process first saw it; a process counts
  from its own start, as Prometheus counters do).

Metric names (``GET /metrics``; in Ray's export each has a ``ray_`` prefix)::

    rayproc_tasks{status, task_type}                  gauge      tasks in the database
    rayproc_queue_depth                               gauge      runs waiting in the admission queue
    rayproc_runs_running                              gauge      runs handed to Ray that have not ended
    rayproc_tasks_created_total{task_type}            counter
    rayproc_runs_stopped_total / _resumed_total / _retried_total / _submitted_total   counters
    rayproc_runs_ended_total{task_type, outcome}      counter
    rayproc_run_duration_seconds{task_type, outcome}  histogram  start to end of a run
    rayproc_items_processed_total{task_type}          counter
    rayproc_items_failed_total{task_type}             counter
    rayproc_api_requests_total{method, route, status} counter
    rayproc_api_request_duration_seconds{method, route}  histogram
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 - the one media type to answer with

from jobs.status import TaskStatus
from serve_app.background import Periodic

log = logging.getLogger("rayproc.service")

#: Run durations, seconds: from a tiny task inside its driver to a long dataset.
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: What a request that matched no route is counted under (a raw path would make a series per URL).
UNMATCHED_ROUTE = "unmatched"

_ACTIVE = (int(TaskStatus.INITIALIZED), int(TaskStatus.RUNNING))


class _Family:
    """One metric in both exports. ``kind`` is counter, gauge or histogram."""

    def __init__(self, registry: CollectorRegistry, kind: str, name: str, doc: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] | None = None) -> None:
        self.kind, self.name, self.doc, self.labels, self.buckets = kind, name, doc, labels, buckets
        if kind == "counter":
            self.prom = Counter(name, doc, labels, registry=registry)
        elif kind == "gauge":
            self.prom = Gauge(name, doc, labels, registry=registry)
        else:
            self.prom = Histogram(name, doc, labels, registry=registry, buckets=buckets)
        self._ray = None
        self._ray_failed = False

    def _prom_child(self, tags: dict[str, str]):
        return self.prom.labels(**tags) if self.labels else self.prom

    def _ray_metric(self):
        """Ray's twin, made on first use inside a Ray process (never at import: nothing connects to Ray then)."""
        if self._ray is not None or self._ray_failed:
            return self._ray
        try:
            import ray

            if not ray.is_initialized():
                return None
            from ray.util import metrics as ray_metrics

            # Ray adds `_total` to counters itself; the Prometheus name keeps it.
            name = self.name.removesuffix("_total")
            if self.kind == "counter":
                self._ray = ray_metrics.Counter(name, self.doc, tag_keys=self.labels)
            elif self.kind == "gauge":
                self._ray = ray_metrics.Gauge(name, self.doc, tag_keys=self.labels)
            else:
                self._ray = ray_metrics.Histogram(name, self.doc, boundaries=list(self.buckets or ()),
                                                  tag_keys=self.labels)
        except Exception as exc:  # noqa: BLE001 - metrics must never break the service
            log.warning("Ray metric %s unavailable: %s", self.name, exc)
            self._ray_failed = True
        return self._ray

    def inc(self, value: float = 1.0, **tags: str) -> None:
        if value <= 0:
            return
        self._prom_child(tags).inc(value)
        ray_metric = self._ray_metric()
        if ray_metric is not None:
            ray_metric.inc(value, tags=tags or None)

    def set(self, value: float, **tags: str) -> None:
        self._prom_child(tags).set(value)
        ray_metric = self._ray_metric()
        if ray_metric is not None:
            ray_metric.set(value, tags=tags or None)

    def observe(self, value: float, **tags: str) -> None:
        self._prom_child(tags).observe(value)
        ray_metric = self._ray_metric()
        if ray_metric is not None:
            ray_metric.observe(value, tags=tags or None)


class Metrics:
    """Every metric of one process. The service uses the module's :data:`METRICS`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks = _Family(r, "gauge", "rayproc_tasks", "Tasks in the database, by status and type.",
                             ("status", "task_type"))
        self.queue_depth = _Family(r, "gauge", "rayproc_queue_depth", "Runs waiting in the admission queue.")
        self.runs_running = _Family(r, "gauge", "rayproc_runs_running",
                                    "Runs handed to Ray that have not ended.")
        self.tasks_created = _Family(r, "counter", "rayproc_tasks_created_total", "Tasks created.", ("task_type",))
        self.runs_stopped = _Family(r, "counter", "rayproc_runs_stopped_total", "Stops accepted.")
        self.runs_resumed = _Family(r, "counter", "rayproc_runs_resumed_total", "Resumes accepted.")
        self.runs_retried = _Family(r, "counter", "rayproc_runs_retried_total",
                                    "Runs queued again after an infrastructure failure.")
        self.runs_submitted = _Family(r, "counter", "rayproc_runs_submitted_total", "Runs Ray accepted.")
        self.runs_ended = _Family(r, "counter", "rayproc_runs_ended_total", "Runs that ended, by outcome.",
                                  ("task_type", "outcome"))
        self.run_duration = _Family(r, "histogram", "rayproc_run_duration_seconds",
                                    "Run durations, from the runner's start to the run's end.",
                                    ("task_type", "outcome"), DURATION_BUCKETS)
        self.items_processed = _Family(r, "counter", "rayproc_items_processed_total", "Items processed.",
                                       ("task_type",))
        self.items_failed = _Family(r, "counter", "rayproc_items_failed_total", "Items that failed.",
                                    ("task_type",))
        self.requests = _Family(r, "counter", "rayproc_api_requests_total",
                                "API requests, by route template and status.", ("method", "route", "status"))
        self.request_duration = _Family(r, "histogram", "rayproc_api_request_duration_seconds",
                                        "API request durations.", ("method", "route"), REQUEST_BUCKETS)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


#: The process's metrics.
METRICS = Metrics()


class MetricsLoop:
    """Refreshes the figures that come from the database, every ``interval_seconds`` (see the module text).

    It reads the database through a read-only connection of its own. ``clock`` gives epoch milliseconds."""

    #: Rows are looked at again this long back, so one written in the same millisecond as a pass is not missed.
    OVERLAP_MS = 5_000

    def __init__(self, db_path: str | Path, metrics: Metrics = METRICS, *, interval_seconds: float = 5.0,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.db_path = Path(db_path)
        self.metrics = metrics
        self._clock = clock
        self._started_ms = clock()
        self._since_ms = self._started_ms
        self._counted_runs: dict[str, int] = {}  # run id -> end time, for runs already counted
        self._items: dict[str, tuple[int, int]] = {}  # task id -> (processed, failed) already counted
        self._seen_labels: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._background = Periodic(self.refresh, interval_seconds, "rayproc-metrics")

    def start(self) -> None:
        self.refresh_quietly()
        self._background.start()

    def close(self) -> None:
        self._background.close()

    def refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - a missing or busy database must not stop the service
            log.exception("metrics pass failed")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    def refresh(self) -> None:
        """One pass: gauges set from the database, counters grown by what changed since the last pass."""
        if not self.db_path.exists():
            return
        with self._lock:
            now = self._clock()
            since = self._since_ms - self.OVERLAP_MS
            conn = self._connect()
            try:
                by_status = conn.execute(
                    "SELECT status, task_type, COUNT(*) AS n FROM tasks GROUP BY status, task_type").fetchall()
                queued = conn.execute(
                    "SELECT COUNT(*) FROM runs r JOIN tasks t ON t.current_run = r.run_id "
                    "WHERE r.queued = 1 AND t.status = ?", (int(TaskStatus.INITIALIZED),)).fetchone()[0]
                running = conn.execute(
                    "SELECT COUNT(*) FROM tasks t JOIN runs r ON r.run_id = t.current_run "
                    "WHERE t.status IN (?, ?) AND r.queued = 0", _ACTIVE).fetchone()[0]
                ended = conn.execute(
                    "SELECT r.run_id, r.outcome, r.start_time, r.end_time, t.task_type FROM runs r "
                    "JOIN tasks t ON t.task_id = r.task_id WHERE r.end_time >= ?", (since,)).fetchall()
                changed = conn.execute(
                    "SELECT task_id, task_type, status, processed_count, failed_count, create_time FROM tasks "
                    "WHERE update_time >= ? OR status IN (?, ?)", (since, *_ACTIVE)
                ).fetchall()
            finally:
                conn.close()
            self._set_tasks(by_status)
            self.metrics.queue_depth.set(queued)
            self.metrics.runs_running.set(running)
            self._count_ended(ended)
            self._count_items(changed)
            self._since_ms = now

    def _set_tasks(self, rows: list[sqlite3.Row]) -> None:
        counts = {(TaskStatus(r["status"]).label, r["task_type"]): r["n"] for r in rows}
        for key in self._seen_labels - counts.keys():
            counts[key] = 0  # a status no task has any more reads 0, not its last count
        for (status, task_type), n in counts.items():
            self.metrics.tasks.set(n, status=status, task_type=task_type)
        self._seen_labels |= counts.keys()

    def _count_ended(self, rows: list[sqlite3.Row]) -> None:
        for r in rows:
            if r["run_id"] in self._counted_runs or r["end_time"] < self._started_ms:
                continue
            self._counted_runs[r["run_id"]] = r["end_time"]
            outcome = r["outcome"] or "unknown"
            self.metrics.runs_ended.inc(task_type=r["task_type"], outcome=outcome)
            if r["start_time"] is not None:
                self.metrics.run_duration.observe(max(0, r["end_time"] - r["start_time"]) / 1000,
                                                  task_type=r["task_type"], outcome=outcome)
        horizon = self._since_ms - 2 * self.OVERLAP_MS
        self._counted_runs = {k: v for k, v in self._counted_runs.items() if v >= horizon}

    def _count_items(self, rows: list[sqlite3.Row]) -> None:
        for r in rows:
            task_id, now = r["task_id"], (r["processed_count"], r["failed_count"])
            if task_id in self._items:
                before = self._items[task_id]
            elif r["create_time"] < self._started_ms:
                # Items counted before this process started are not this process's; a task created since
                # starts from nothing.
                before = now
            else:
                before = (0, 0)
            self.metrics.items_processed.inc(max(0, now[0] - before[0]), task_type=r["task_type"])
            self.metrics.items_failed.inc(max(0, now[1] - before[1]), task_type=r["task_type"])
            # Ended tasks stay remembered too: a resume of one grows its counts from where they were.
            self._items[task_id] = now
