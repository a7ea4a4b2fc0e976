"""Building the service: the one place its parts are made and wired together.

The Serve deployment builds it at start-up; in-process tests and benchmarks build it the same way,
passing their own store, Ray launcher or clock. Nothing here connects to Ray: the launcher makes its
client on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from jobs.catalog import load_plugins
from jobs.datasets import Datasets
from jobs.launcher import JobLauncher
from jobs.store import Store, now_ms
from operators.registry import OperatorRegistry, default_registry
from serve_app.dispatcher import Dispatcher
from serve_app.imports import ImportService
from serve_app.job_records import JobRecords
from serve_app.reconciler import Reconciler
from serve_app.service import TaskService
from serve_app.settings import Settings
from serve_app.submission import RunSubmitter


def build_service(settings: Settings, *, store: Store | None = None, launcher: JobLauncher | None = None,
                  registry: OperatorRegistry | None = None, clock: Callable[[], int] = now_ms) -> TaskService:
    """The task commands for ``settings`` (paths already resolved), with the imports, the submitter and
    the reconciler and the dispatcher they use. Neither background pass is started here: the caller starts
    them with ``service.reconciler.start()`` and ``service.dispatcher.start()`` once it serves requests."""
    store = store or Store(settings.database, clock=clock)
    launcher = launcher or JobLauncher(settings.dashboard_url, stop_grace_seconds=settings.stop_grace_seconds,
                                       call_timeout_seconds=settings.ray_call_timeout_seconds)
    read_launcher = launcher.for_reads(settings.ray_read_timeout_seconds)
    registry = registry or default_registry()
    load_plugins(settings.operator_plugins, registry)
    dispatcher = Dispatcher(settings, store, RunSubmitter(settings, store, launcher), clock=clock)
    return TaskService(
        settings, store, launcher, registry=registry,
        imports=ImportService(settings, Datasets(settings.database), launcher, read_launcher),
        reconciler=Reconciler(store, launcher, interval_seconds=settings.reconcile_interval_seconds, clock=clock,
                              on_failure=dispatcher.wake, retry=dispatcher.retry_plan, read_launcher=read_launcher),
        dispatcher=dispatcher,
    )


def build_job_records(service: TaskService) -> JobRecords:
    """Keeping ended runs' logs and retiring their Ray records, for ``service``'s store and cluster (not started)."""
    settings = service.settings
    return JobRecords(service.store, service.launcher, retention_seconds=settings.ray_job_retention_seconds,
                      interval_seconds=settings.archive_interval_seconds)
