"""Handing a task's run to Ray: the one place the service starts work on the cluster."""

from __future__ import annotations

from jobs import launcher as L
from jobs.store import Store
from serve_app.ray_errors import ray_errors
from serve_app.settings import Settings


class RunSubmitter:
    """Submits one run of a task as a Ray job and records that Ray accepted it.

    Every start of work goes through :meth:`submit`, called by the dispatcher (:mod:`serve_app.dispatcher`)
    for a run it claimed from the queue: a task's first run (create) and each later one (resume, retry).
    If Ray cannot take the job, the error reaches the dispatcher, which puts the run back in the queue.
    """

    def __init__(self, settings: Settings, store: Store, launcher: L.JobLauncher) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher

    def submit(self, *, task_id: str, project_id: str, task_type: str, run_id: str) -> None:
        entrypoint = L.runner_entrypoint(
            db_path=self.settings.database, task_id=task_id, run_id=run_id,
            allowed_roots=self.settings.allowed_roots, plugins=self.settings.operator_plugins,
            ray_address=self.settings.cluster_address)
        metadata = {L.METADATA_KEY: task_id, "rayproc_project_id": project_id, "rayproc_task_type": task_type,
                    "rayproc_run_id": run_id}
        # With PostgreSQL the driver needs nothing of the head's file system, so Ray may place it on any node.
        env = L.database_env(self.settings.database)
        with ray_errors():
            self.launcher.submit(run_id=run_id, entrypoint=entrypoint, metadata=metadata, env_vars=env,
                                 anywhere=bool(env))
        # From here on the reconciler may judge the run by Ray's status.
        self.store.mark_submitted(run_id)
