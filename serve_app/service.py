"""Task commands: create, stop, resume, delete, and the reads (get, list, report, logs).

Settling records against Ray is the reconciler's (:mod:`serve_app.reconciler`); the commands only queue
runs, and handing them to Ray is the dispatcher's (:mod:`serve_app.dispatcher`); :mod:`serve_app.assembly`
builds all of them.
"""

from __future__ import annotations

import secrets
import string
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from jobs import launcher as L
from jobs.catalog import CatalogError, parse_task_type, resolve_operators
from jobs.chain import chain_source
from jobs.layout import RunLayout
from jobs.locations import Location, ObjectPath, check_writable
from jobs.sources import PathNotAllowed as _PathNotAllowed
from jobs.sources import resolve_location
from jobs.storage import ObjectError
from jobs.status import TaskStatus
from jobs.store import ListQuery, Store, TaskRecord
from operators.registry import OperatorRegistry
from serve_app import errors as E
from serve_app import report
from serve_app.dispatcher import Dispatcher
from serve_app.imports import ImportService
from serve_app.job_records import follow_run_log, kept_log
from serve_app.metrics import METRICS
from serve_app.ray_errors import ray_errors
from serve_app.reconciler import Reconciler
from serve_app.schemas import ProcessorTaskCreate
from serve_app.settings import Settings
from serve_app.views import task_view

_ID_ALPHABET = string.ascii_letters + string.digits
RESUMABLE = (TaskStatus.STOPPED, TaskStatus.FAILED)
#: A create or resume is refused (503) while Ray failed to answer within this many seconds and nothing
#: answered since: it would only queue work for a cluster the service cannot reach. Past it, work is queued
#: and the dispatcher finds out again.
UNREACHABLE_WINDOW_SECONDS = 10.0


def new_task_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def _check_writable(folder: Location) -> None:
    """A work path the runner could not write would fail the task seconds later: try it now, by making the
    folder and a file in it (permission bits alone say nothing when the service runs as root), or for a
    bucket prefix by writing and removing a small object (a missing bucket or read-only keys fail here)."""
    try:
        if isinstance(folder, ObjectPath):
            check_writable(folder)
            return
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise E.InvalidParameter(f"work_path.path: cannot write to {str(folder)!r}: "
                                 f"{exc.strerror or str(exc) or type(exc).__name__}") from None


class TaskService:
    """The processor-task commands the API routes call.

    Reads have the reconciler settle a stale active record before they answer, so an answer does not
    claim running for long after its job has ended. Creates and resumes only queue a run (no Ray call) and
    wake the dispatcher, which starts it when a slot is free."""

    def __init__(self, settings: Settings, store: Store, launcher: L.JobLauncher, *, registry: OperatorRegistry,
                 imports: ImportService, reconciler: Reconciler, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self.registry = registry
        #: Imports and datasets; tasks read DATASET sources through it.
        self.imports = imports
        self.reconciler = reconciler
        self.dispatcher = dispatcher

    # ----- create ------------------------------------------------------------------------

    def create(self, project_id: str, body: ProcessorTaskCreate, *,
               within: Callable[[Any, str], None] | None = None) -> str:
        """Queue a new task; its id. ``within(conn, task_id)`` runs in the insert's write transaction (the
        create's idempotency key is taken there); whatever it raises leaves nothing created.

        One write transaction and no read-back: the answer is the id, and a read of the whole queue for the
        new task's place would cost every create of a burst the length of the queue."""
        self._refuse_while_ray_is_away()
        try:
            task_type = parse_task_type(body.template.id)
            specs = resolve_operators(
                task_type, [op.model_dump(exclude_none=True) for op in body.template.operator_params], self.registry)
        except CatalogError as exc:
            raise E.InvalidParameter(str(exc)) from None

        src = body.source
        version_id = body.version_id or src.version_id
        version_name = src.version_name
        if src.type == "DATASET":
            input_root, version = self._dataset_source(project_id, src.source, version_id)
            if version is not None:
                version_name = version["name"]
        else:
            input_root = self._input_root(project_id, src.type, src.source)
        task_id = new_task_id()
        output_dir = self._output_dir(body, task_id)
        template = {**body.template.model_dump(exclude_none=True), "operator_params": [s.to_json() for s in specs]}
        data_source = src.model_dump(exclude_none=True)
        work_path = {"type": "OBS", "path": str(output_dir.parent), "output_path": str(output_dir)}
        if body.work_path and body.work_path.name:
            work_path["name"] = body.work_path.name
        chunk = (body.execution.chunk_size if body.execution and body.execution.chunk_size else
                 self.settings.default_chunk_size)
        run_id = L.new_run_id(task_id, 1)
        self.store.insert_task({
            "task_id": task_id, "project_id": project_id, "workspace_id": body.workspace_id,
            "name": body.name, "description": body.description, "task_type": task_type.value,
            "source_type": src.type, "source": src.source,
            "version_id": version_id, "version_name": version_name,
            "data_source": data_source if body.data_source is not None else None,
            "inputs": [data_source], "template": template, "work_path": work_path,
            "input_root": str(input_root), "output_dir": str(output_dir), "execution": {"chunk_size": chunk},
            "current_run": run_id, "priority": body.priority,
        }, within=None if within is None else lambda conn: within(conn, task_id))
        METRICS.tasks_created.inc(task_type=task_type.value)
        self.dispatcher.wake()
        return task_id

    def _input_root(self, project_id: str, source_type: str, source: str) -> Path | str:
        if source_type == "OBS":
            try:
                return resolve_location(source, self.settings.allowed_roots)
            except _PathNotAllowed as exc:
                raise E.PathNotAllowed(f"data_source.source: {exc}") from None
            except FileNotFoundError:
                raise E.InvalidParameter(f"data_source.source: path does not exist: {source!r}") from None
            except ObjectError as exc:
                raise E.InvalidParameter(f"data_source.source: cannot read {source!r}: {exc.message}") from None
        if source_type == "TASK":
            E.validate_resource_id(source, "source task")
            upstream = self.store.get_task(source, project_id)
            if upstream is None:
                raise E.InvalidParameter(f"data_source.source: no task {source!r} in this project")
            if upstream.status != TaskStatus.COMPLETED:
                raise E.InvalidParameter(f"data_source.source: task {source} is {upstream.status.label}; "
                                         "only a completed task's output can be a source")
            return chain_source(upstream, self.settings.data_dir / "sources", self.registry)
        raise E.InvalidParameter(
            f"data_source.type: {source_type!r} sources are not supported by this release; use OBS, DATASET or TASK")

    def _dataset_source(self, project_id: str, dataset_id: str, version_id: str | None) -> tuple[Path, dict | None]:
        return self.imports.source_manifest(project_id, dataset_id, version_id)

    def _output_dir(self, body: ProcessorTaskCreate, task_id: str) -> Location:
        """The task's output folder under its work path: a server folder or a bucket prefix (``s3://``,
        ``obs://``) inside the allowed roots, where the runner keeps its committed parts too."""
        wp = body.work_path
        if wp is not None and wp.type != "OBS":
            raise E.InvalidParameter(f"work_path.type: {wp.type!r} work paths are not supported; use OBS")
        base = (wp.path or wp.output_path) if wp is not None else None
        base = base or str(self.settings.default_work_root)
        try:
            resolved = resolve_location(base, self.settings.allowed_roots, must_exist=False)
        except _PathNotAllowed as exc:
            raise E.PathNotAllowed(f"work_path.path: {exc}") from None
        layout = RunLayout.for_task(resolved, task_id)
        _check_writable(layout.output_dir.parent)
        return layout.output_dir

    # ----- read --------------------------------------------------------------------------

    def _get(self, project_id: str, task_id: str) -> TaskRecord:
        rec = self.store.get_task(task_id, project_id, with_runs=True)
        if rec is None:
            raise E.NotFound(f"processor task {task_id!r} not found")
        if rec.status == TaskStatus.INITIALIZED:
            rec.queue_position = self.store.queue_positions([rec.current_run]).get(rec.current_run)
        self._link_runs(rec.runs)
        return rec

    def dashboard_job_url(self, run_id: str) -> str:
        """The Ray dashboard's page of a run's Ray job."""
        base = (self.settings.dashboard_public_url or self.settings.dashboard_url).rstrip("/")
        return f"{base}/#/jobs/{run_id}"

    def _link_runs(self, runs: list[dict]) -> None:
        for run in runs:
            run["dashboard_url"] = self.dashboard_job_url(run["run_id"]) if run.get("submitted", 1) else None

    def get(self, project_id: str, task_id: str) -> TaskRecord:
        E.validate_resource_id(task_id)
        rec = self._get(project_id, task_id)
        if self.reconciler.settle_if_stale(rec):
            rec = self._get(project_id, task_id)
        return rec

    def list(self, project_id: str, query: ListQuery) -> tuple[int, list[TaskRecord]]:
        count, records = self.store.list_tasks(project_id, query)
        positions = self._queue_positions(records)
        # Tasks waiting in the queue are not Ray's yet: only those handed to it are worth asking Ray about.
        if any(not r.status.is_terminal() and r.current_run not in positions for r in records) \
                and self.reconciler.reconcile_all(reading=True):
            count, records = self.store.list_tasks(project_id, query)
            positions = self._queue_positions(records)
        runs = self.store.runs_for([r.task_id for r in records])
        for r in records:
            r.runs = runs.get(r.task_id, [])
            self._link_runs(r.runs)
            r.queue_position = positions.get(r.current_run)
        return count, records

    def _queue_positions(self, records: list[TaskRecord]) -> dict[str, int]:
        return self.store.queue_positions(r.current_run for r in records if r.status == TaskStatus.INITIALIZED)

    def report(self, project_id: str, task_id: str) -> str:
        rec = self.get(project_id, task_id)
        if rec.status != TaskStatus.COMPLETED:
            raise E.InvalidState(f"task {task_id} is {rec.status.label}; a report needs a completed task")
        if rec.task_type not in report.TEMPLATES:
            raise E.InvalidState(f"task {task_id} is {rec.task_type}; reports are drawn for "
                                 f"{', '.join(report.TEMPLATES)} tasks")
        try:  # the params in force, defaults filled, as the run saw them
            specs = resolve_operators(parse_task_type(rec.task_type), rec.template.get("operator_params") or [],
                                      self.registry)
            operators = [(s.id, s.params) for s in specs]
        except CatalogError:
            operators = None  # an operator no longer installed: show the params as they were given
        # The manifest's root as written: a bucket root must not go through Path, which folds "s3://" to "s3:/".
        layout = RunLayout(rec.output_dir)
        try:
            manifest = layout.read_manifest()
        except OSError as exc:  # the store's answer names the object, never credentials
            raise E.StorageUnavailable(f"task {task_id}'s run files cannot be read from {layout.output_dir}: "
                                       f"{exc}") from None
        except ValueError:
            raise E.InvalidState(f"task {task_id}'s manifest in {layout.output_dir} is damaged; the report "
                                 "cannot be drawn") from None
        root = manifest["root"] if manifest is not None else rec.input_root
        return report.render(task_view(rec), root, operators=operators)

    def _log_run(self, project_id: str, task_id: str, run: int | None) -> tuple[TaskRecord, str]:
        rec = self.get(project_id, task_id)
        runs = [r["run_id"] for r in rec.runs]
        if run is not None and run > len(runs):
            raise E.NotFound(f"task {task_id} has {len(runs)} run(s)")
        return rec, runs[run - 1] if run is not None else rec.current_run

    def follow_logs(self, project_id: str, task_id: str, run: int | None) -> AsyncIterator[str]:
        """The run's log as it grows, until the run ends (or the stream's bounds: ``log_follow_max_seconds``,
        ``log_follow_max_bytes``). Unknown tasks and runs raise here, before anything is streamed."""
        rec, run_id = self._log_run(project_id, task_id, run)
        return follow_run_log(self.store, self.launcher, task_id=rec.task_id, run_id=run_id,
                              output_dir=rec.output_dir, current=run is None,
                              max_seconds=self.settings.log_follow_max_seconds,
                              max_bytes=self.settings.log_follow_max_bytes)

    def logs(self, project_id: str, task_id: str, run: int | None) -> str:
        rec, run_id = self._log_run(project_id, task_id, run)
        kept = kept_log(rec.output_dir, run_id)  # an ended run's log, kept whole: Ray may have none by now
        if kept is not None:
            return kept
        with ray_errors():
            try:
                return self.launcher.logs(run_id)
            except L.RayJobNotFound:
                raise E.NotFound(f"Ray no longer has the logs of run {run_id}") from None

    # ----- stop / resume / delete ----------------------------------------------------------

    def stop(self, project_id: str, task_id: str) -> TaskRecord:
        E.validate_resource_id(task_id)
        rec = self.get(project_id, task_id)
        if rec.status.is_terminal():
            raise E.InvalidState(f"task {task_id} is already {rec.status.label} (status {int(rec.status)}); "
                                 "only an initialized or running task can be stopped")
        if rec.queue_position is not None and self.store.stop_if_not_started(task_id):
            METRICS.runs_stopped.inc()
            return self._get(project_id, task_id)  # Ray never heard of the run: nothing to ask it
        # Ask Ray first: if the cluster is unreachable nothing changes and the caller gets a 503.
        with ray_errors():
            try:
                # False: the job had already ended (its runner never recorded an outcome).
                ended = not self.launcher.stop(rec.current_run)
            except L.RayJobNotFound:
                ended = True  # the job is gone; reconciliation below settles the record
        # A job Ray still holds PENDING ignores stop_job for minutes: the record is the source of truth,
        # and the runner refuses to start a run whose task is no longer initialized.
        self.store.stop(task_id)  # one write transaction for either
        METRICS.runs_stopped.inc()
        rec = self._get(project_id, task_id)
        # Only a job that had ended is settled here. A running one was just sent SIGTERM: Ray reports it running
        # until its runner, winding down, has recorded status 4 itself, so asking Ray again now would only add
        # a Jobs API call to every stop (a runner that dies instead is settled by the background pass).
        if ended and not rec.status.is_terminal():
            self.reconciler.reconcile(rec)
            rec = self._get(project_id, task_id)
        self.dispatcher.wake()  # a slot may have freed
        return rec

    def _refuse_while_ray_is_away(self) -> None:
        """503 at once, without asking Ray, while the service knows Ray cannot be reached."""
        age = self.launcher.reachability.unreachable_for(UNREACHABLE_WINDOW_SECONDS)
        if age is not None:
            raise E.RayUnavailable(f"the Ray cluster did not answer {age:.0f} s ago and has not since; "
                                   "nothing was recorded: try again once it is back")

    def resume(self, project_id: str, task_id: str) -> TaskRecord:
        E.validate_resource_id(task_id)
        rec = self.get(project_id, task_id)
        if rec.status not in RESUMABLE:
            raise E.InvalidState(f"task {task_id} is {rec.status.label} (status {int(rec.status)}); "
                                 "only a stopped or failed task can be resumed")
        self._refuse_while_ray_is_away()
        run_id = L.new_run_id(task_id, len(rec.runs) + 1)
        if not self.store.begin_new_run(task_id, run_id, RESUMABLE):
            raise E.Conflict(f"task {task_id} changed state while resuming; read it and try again")
        METRICS.runs_resumed.inc()
        self.dispatcher.wake()
        return self._get(project_id, task_id)

    def delete(self, project_id: str, task_id: str) -> None:
        E.validate_resource_id(task_id)
        rec = self.get(project_id, task_id)
        # A task waiting in the queue may go too: nothing of it runs. The store decides, atomically against
        # a dispatcher claiming the run at this moment.
        if not self.store.delete_task(task_id):
            raise E.Conflict(f"task {task_id} is {rec.status.label}; stop it before deleting it")

