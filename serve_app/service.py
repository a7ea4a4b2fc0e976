"""Task lifecycle: create, read, list, stop, resume, delete, and reconciliation with Ray."""

from __future__ import annotations

import logging
import secrets
import string
import threading
from pathlib import Path

from jobs import launcher as L
from jobs.catalog import CatalogError, load_plugins, parse_task_type, resolve_operators
from jobs.chain import chain_source
from jobs.datasets import Datasets
from jobs.layout import RunLayout
from jobs.sources import PathNotAllowed as _PathNotAllowed
from jobs.sources import resolve_within
from jobs.status import ErrorType, TaskStatus
from jobs.store import ListQuery, Store, TaskRecord, now_ms
from operators.registry import OperatorRegistry, default_registry
from serve_app import errors as E
from serve_app import report
from serve_app.imports import ImportService
from serve_app.ray_errors import ray_errors
from serve_app.schemas import ProcessorTaskCreate
from serve_app.settings import Settings
from serve_app.views import task_view

log = logging.getLogger("rayproc.service")

_ID_ALPHABET = string.ascii_letters + string.digits
RESUMABLE = (TaskStatus.STOPPED, TaskStatus.FAILED)
UNSUBMITTED_GRACE_MS = 60_000
#: Progress this recent shows a running task's runner alive (it records progress several times a second).
FRESH_PROGRESS_MS = 1_000


def new_task_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


class TaskService:
    def __init__(self, settings: Settings, store: Store, launcher: L.JobLauncher,
                 registry: OperatorRegistry | None = None) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self.registry = registry or default_registry()
        load_plugins(settings.operator_plugins, self.registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Imports and datasets; tasks read DATASET sources through it.
        self.imports = ImportService(settings, Datasets(settings.db_path), launcher)

    # ----- create ------------------------------------------------------------------------

    def create(self, project_id: str, body: ProcessorTaskCreate) -> TaskRecord:
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
            "current_run": run_id,
        })
        try:
            self._submit(task_id, project_id, task_type.value, run_id)
        except BaseException:
            self.store.remove_unsubmitted(task_id)
            raise
        return self._get(project_id, task_id)

    def _input_root(self, project_id: str, source_type: str, source: str) -> Path:
        if source_type == "OBS":
            try:
                return resolve_within(source, self.settings.allowed_roots)
            except _PathNotAllowed as exc:
                raise E.PathNotAllowed(f"data_source.source: {exc}") from None
            except FileNotFoundError:
                raise E.InvalidParameter(f"data_source.source: path does not exist: {source!r}") from None
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

    def _output_dir(self, body: ProcessorTaskCreate, task_id: str) -> Path:
        wp = body.work_path
        if wp is not None and wp.type != "OBS":
            raise E.InvalidParameter(f"work_path.type: {wp.type!r} work paths are not supported; use OBS")
        base = (wp.path or wp.output_path) if wp is not None else None
        base = base or str(self.settings.default_work_root)
        try:
            return resolve_within(base, self.settings.allowed_roots, must_exist=False) / task_id
        except _PathNotAllowed as exc:
            raise E.PathNotAllowed(f"work_path.path: {exc}") from None

    def _submit(self, task_id: str, project_id: str, task_type: str, run_id: str) -> None:
        entrypoint = L.runner_entrypoint(
            db_path=str(self.settings.db_path), task_id=task_id, run_id=run_id,
            allowed_roots=self.settings.allowed_roots, plugins=self.settings.operator_plugins)
        metadata = {L.METADATA_KEY: task_id, "rayproc_project_id": project_id, "rayproc_task_type": task_type,
                    "rayproc_run_id": run_id}
        with ray_errors():
            self.launcher.submit(run_id=run_id, entrypoint=entrypoint, metadata=metadata)
        self.store.mark_submitted(run_id)

    # ----- read --------------------------------------------------------------------------

    def _get(self, project_id: str, task_id: str) -> TaskRecord:
        rec = self.store.get_task(task_id, project_id, with_runs=True)
        if rec is None:
            raise E.NotFound(f"processor task {task_id!r} not found")
        return rec

    def get(self, project_id: str, task_id: str) -> TaskRecord:
        E.validate_resource_id(task_id)
        rec = self._get(project_id, task_id)
        if not rec.status.is_terminal() and not self._reporting(rec) and self.reconcile(rec):
            rec = self._get(project_id, task_id)
        return rec

    @staticmethod
    def _reporting(rec: TaskRecord) -> bool:
        """A running task whose runner recorded progress just now is alive: asking Ray too would only load
        its dashboard once per poll of every client. A runner that dies stops reporting, and is asked about
        within ``FRESH_PROGRESS_MS``."""
        return rec.status == TaskStatus.RUNNING and now_ms() - rec.update_time < FRESH_PROGRESS_MS

    def list(self, project_id: str, query: ListQuery) -> tuple[int, list[TaskRecord]]:
        count, records = self.store.list_tasks(project_id, query)
        if any(not r.status.is_terminal() for r in records) and self.reconcile_all():
            count, records = self.store.list_tasks(project_id, query)
        runs = self.store.runs_for([r.task_id for r in records])
        for r in records:
            r.runs = runs.get(r.task_id, [])
        return count, records

    def report(self, project_id: str, task_id: str) -> str:
        rec = self.get(project_id, task_id)
        if rec.status != TaskStatus.COMPLETED:
            raise E.InvalidState(f"task {task_id} is {rec.status.label}; a report needs a completed task")
        if rec.task_type != "sys_data_analyse":
            raise E.InvalidState(f"task {task_id} is {rec.task_type}; reports are for sys_data_analyse tasks")
        return report.render(task_view(rec), RunLayout(rec.output_dir).input_root(rec.input_root))

    def logs(self, project_id: str, task_id: str, run: int | None) -> str:
        rec = self.get(project_id, task_id)
        runs = [r["run_id"] for r in rec.runs]
        if run is not None and run > len(runs):
            raise E.NotFound(f"task {task_id} has {len(runs)} run(s)")
        run_id = runs[run - 1] if run is not None else rec.current_run
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
        # Ask Ray first: if the cluster is unreachable nothing changes and the caller gets a 503.
        with ray_errors():
            try:
                self.launcher.stop(rec.current_run)
            except L.RayJobNotFound:
                pass  # the job is gone; reconciliation below settles the record
        # A job Ray still holds PENDING ignores stop_job for minutes: the record is the source of truth,
        # and the runner refuses to start a run whose task is no longer initialized.
        if not self.store.stop_if_not_started(task_id):
            self.store.request_stop(task_id)
        rec = self._get(project_id, task_id)
        if not rec.status.is_terminal():
            self.reconcile(rec)
            rec = self._get(project_id, task_id)
        return rec

    def resume(self, project_id: str, task_id: str) -> TaskRecord:
        E.validate_resource_id(task_id)
        rec = self.get(project_id, task_id)
        if rec.status not in RESUMABLE:
            raise E.InvalidState(f"task {task_id} is {rec.status.label} (status {int(rec.status)}); "
                                 "only a stopped or failed task can be resumed")
        run_id = L.new_run_id(task_id, len(rec.runs) + 1)
        if not self.store.begin_new_run(task_id, run_id, RESUMABLE):
            raise E.Conflict(f"task {task_id} changed state while resuming; read it and try again")
        try:
            self._submit(task_id, project_id, rec.task_type, run_id)
        except BaseException:
            self.store.abandon_run(task_id, run_id, rec)
            raise
        return self._get(project_id, task_id)

    def delete(self, project_id: str, task_id: str) -> None:
        E.validate_resource_id(task_id)
        rec = self.get(project_id, task_id)
        if not rec.status.is_terminal() or not self.store.delete_task(task_id):
            raise E.Conflict(f"task {task_id} is {rec.status.label}; stop it before deleting it")

    # ----- reconciliation ----------------------------------------------------------------

    def reconcile(self, rec: TaskRecord) -> bool:
        """Settle one active record against Ray's view of its current run. True if it changed."""
        submitted, since = self.store.run_submitted(rec.current_run)
        if not submitted:
            # Being submitted right now; only a submission abandoned by a crashed service is settled.
            if now_ms() - since < UNSUBMITTED_GRACE_MS:
                return False
            return self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.FAILED,
                                         error_type=ErrorType.JOB_DIED.value,
                                         error_msg="the run was never submitted to Ray (the service stopped "
                                                   "while submitting it); resume the task to run it")
        try:
            state = self.launcher.state(rec.current_run)
        except L.RayJobNotFound:
            state = L.RayJobState("FAILED", "Ray has no record of this job (was the cluster restarted?)")
        except (L.RayUnavailable, L.RayJobError):
            return False  # reads must not fail because Ray is briefly away
        return self._settle(rec, state)

    def reconcile_all(self) -> bool:
        active = self.store.active_tasks()
        if not active:
            return False
        try:
            states = self.launcher.states()
        except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound):
            return False
        changed = False
        for rec in active:
            state = states.get(rec.current_run)
            if state is None:
                changed |= self.reconcile(rec)  # not in the list yet, or gone: ask about it directly
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
        reason = (f"the Ray job {rec.current_run} ended ({state.status}) without recording an outcome"
                  + (f": {state.message}" if state.message else ""))
        if rec.stop_requested:
            return self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.STOPPED, message=reason)
        return self.store.finish_run(rec.task_id, rec.current_run, TaskStatus.FAILED,
                                     error_type=ErrorType.JOB_DIED.value, error_msg=reason)

    def start_reconciler(self) -> None:
        """Reconcile in the background too, so records settle even when nobody reads them."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.settings.reconcile_interval_seconds):
                try:
                    self.reconcile_all()
                except Exception:  # keep the loop alive; the next pass retries
                    log.exception("reconciliation pass failed")

        self._thread = threading.Thread(target=loop, name="rayproc-reconciler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

