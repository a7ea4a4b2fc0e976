"""Submitting, stopping and inspecting task runs as Ray jobs.

Errors from Ray's job SDK are translated here, and only here, into
:class:`RayUnavailable` (cannot reach the cluster), :class:`RayJobNotFound` and
:class:`RayJobError` (anything else).
"""

from __future__ import annotations

import secrets
import shlex
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: Metadata key that marks a Ray job as one of ours (the dashboard shows it).
METADATA_KEY = "rayproc_task_id"
#: The variable of a job's runtime env that carries a PostgreSQL URL to its driver: never the entrypoint,
#: the metadata or a log line (see docs/architecture.md for what Ray's dashboard shows of a runtime env).
DATABASE_URL_ENV = "RAYPROC_DATABASE_URL"
#: Memory (bytes, Ray's logical resource) a driver reserves when it may run on any node: any reservation lifts
#: Ray's placement of drivers on the head. Memory, not a fraction of a CPU: 0.01 CPU left a one-CPU node unable
#: to start any one-CPU chunk (0.99 free), and chunks ask for no memory.
ANYWHERE_DRIVER_MEMORY = 1 << 20
#: The drivers' CPU priority (``nice``). Drivers run on the head node beside the service's API replica and its
#: Serve proxy (both at 0); a burst of small tasks, each run in its driver, would otherwise take the cores from
#: the requests that queue them. (Chunks on the cluster run in Ray's workers, at the raylets' nice 15.)
DRIVER_NICENESS = 10


class RayUnavailable(Exception):
    pass


class RayJobNotFound(Exception):
    pass


class RayJobError(Exception):
    pass


@dataclass(frozen=True)
class RayJobState:
    status: str  # PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED
    message: str | None = None
    #: When the job ended (epoch milliseconds), once it has; and the task it ran (from its metadata).
    end_time_ms: int | None = None
    task_id: str | None = None
    #: The node the job's driver runs on, once Ray has placed it.
    driver_node_id: str | None = None

    def is_terminal(self) -> bool:
        """A method, as Ray's ``JobStatus.is_terminal()`` and :meth:`TaskStatus.is_terminal` are."""
        return self.status in ("STOPPED", "SUCCEEDED", "FAILED")


def new_run_id(task_id: str, seq: int) -> str:
    """A Ray submission id for one run. Ray never accepts a submission id twice, even
    after a job is deleted, so the random suffix keeps ids fresh across database resets."""
    return f"rayproc-{task_id}-r{seq}-{secrets.token_hex(3)}"


def database_args(database: str) -> list[str]:
    """How a driver is told its database: a SQLite path as ``--db``; a PostgreSQL URL only by the name of the
    variable that holds it (:func:`database_env`)."""
    from jobs.db import is_database_url

    return ["--db-env", DATABASE_URL_ENV] if is_database_url(database) else ["--db", database]


def database_env(database: str) -> dict[str, str]:
    """The runtime-env variables a driver needs to open ``database`` (none for a SQLite path)."""
    from jobs.db import is_database_url

    return {DATABASE_URL_ENV: database} if is_database_url(database) else {}


def runner_entrypoint(*, db_path: str, task_id: str, run_id: str, allowed_roots: Sequence[str],
                      plugins: Sequence[str], ray_address: str | None = None) -> str:
    """The command of one run's Ray job. ``ray_address`` is the GCS address the driver joins: Ray's job
    supervisor sets the driver's ``RAY_ADDRESS`` to whichever cluster the host-wide
    ``/tmp/ray/ray_current_cluster`` names (overriding a runtime_env value), which on a host running more
    than one Ray is not always ours."""
    args = [sys.executable, "-m", "jobs.runner", *database_args(db_path), "--task-id", task_id, "--run-id", run_id]
    if ray_address:
        args += ["--ray-address", ray_address]
    for root in allowed_roots:
        args += ["--allowed-root", root]
    for plugin in plugins:
        args += ["--plugin", plugin]
    return _driver_command(args)


def importer_entrypoint(*, db_path: str, import_id: int, allowed_roots: Sequence[str]) -> str:
    args = [sys.executable, "-m", "jobs.importer", *database_args(db_path), "--import-id", str(import_id)]
    for root in allowed_roots:
        args += ["--allowed-root", root]
    return _driver_command(args)


def _driver_command(args: Sequence[str]) -> str:
    """A driver's shell command: ``exec`` makes it the process Ray signals on stop (stops take effect in ~0.1 s,
    not ~2 s), and ``nice`` starts it below the API from its first instruction. Ray starts every job supervisor
    at nice 0 and the driver inherits that; lowered only once the runner had imported its modules, each driver
    spent its start-up, about a second of CPU, level with the requests that queue the next runs."""
    return f"exec nice -n {DRIVER_NICENESS} " + shlex.join(args)


def _classify(exc: Exception) -> Exception:
    import aiohttp  # both dependencies of ray[default]; aiohttp carries the log tail
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                        aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError)):
        return RayUnavailable(f"cannot reach the Ray cluster: {exc}")
    text = str(exc)
    if "404" in text or "does not exist" in text or "not found" in text.lower():
        return RayJobNotFound(text)
    if "Request failed with status code 5" in text or "503" in text:
        return RayUnavailable(f"the Ray cluster answered with an error: {text}")
    return RayJobError(f"{type(exc).__name__}: {text}")


def _client_with_deadline(timeout_seconds: float) -> Callable[..., Any]:
    """A ``JobSubmissionClient`` class whose every HTTP request (the version check in its constructor
    included) gives up after ``timeout_seconds``. Ray's SDK sends its requests with no timeout, so a hung
    dashboard would hold the caller, and every API thread that asks after it, for good."""
    from ray.job_submission import JobSubmissionClient

    class _Client(JobSubmissionClient):
        def _do_request(self, method, endpoint, **kwargs):  # the one place the SDK sends a request
            kwargs.setdefault("timeout", timeout_seconds)
            return super()._do_request(method, endpoint, **kwargs)

    return _Client


class Reachability:
    """What the service last learnt of Ray's reachability, shared by every launcher over one cluster.

    It lets a write that would only queue work refuse at once while Ray is known to be away, without asking
    Ray: a failure this recent with no success since means the cluster cannot be reached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failed_at: float | None = None

    def succeeded(self) -> None:
        self._failed_at = None

    def failed(self) -> None:
        self._failed_at = self._clock()

    def unreachable_for(self, window_seconds: float) -> float | None:
        """Seconds since Ray last failed to answer, if that is under ``window_seconds`` and nothing answered
        since; else ``None``."""
        failed_at = self._failed_at
        if failed_at is None:
            return None
        age = self._clock() - failed_at
        return age if age < window_seconds else None


class JobLauncher:
    """A thin, thread-safe wrapper over ``JobSubmissionClient`` created on first use.

    Every call to Ray's Jobs API has a deadline (``call_timeout_seconds``); one that passes it is
    :class:`RayUnavailable`, as an unreachable cluster is. With ``backoff_seconds``, a call made within
    that long of Ray failing to answer fails at once instead of waiting out its deadline again (see
    :meth:`for_reads`).
    """

    def __init__(self, address: str, *, headers: dict[str, str] | None = None,
                 client_factory: Callable[..., Any] | None = None, stop_grace_seconds: float = 10.0,
                 submit_retry_seconds: float = 15.0, call_timeout_seconds: float = 10.0,
                 backoff_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 reachability: Reachability | None = None) -> None:
        self.address = address
        self.reachability = reachability or Reachability(clock)
        self._headers = headers
        self._factory = client_factory
        self.call_timeout_seconds = call_timeout_seconds
        self._client: Any = None
        self._lock = threading.Lock()
        self.stop_grace_seconds = stop_grace_seconds
        self.submit_retry_seconds = submit_retry_seconds
        self.backoff_seconds = backoff_seconds
        self._clock = clock
        self._unavailable_until = 0.0

    def for_reads(self, timeout_seconds: float, backoff_seconds: float = 2.0) -> JobLauncher:
        """A launcher over the same cluster for the calls a read makes: a short deadline, and none at all
        for ``backoff_seconds`` after Ray failed to answer, so a slow or hung Jobs API costs a read at most
        one short wait (the background reconciliation keeps asking with the full deadline)."""
        return JobLauncher(self.address, headers=self._headers, client_factory=self._factory,
                           stop_grace_seconds=self.stop_grace_seconds, submit_retry_seconds=self.submit_retry_seconds,
                           call_timeout_seconds=timeout_seconds, backoff_seconds=backoff_seconds,
                           clock=self._clock, reachability=self.reachability)

    def _get(self) -> Any:
        with self._lock:
            if self._client is None:
                factory = self._factory or _client_with_deadline(self.call_timeout_seconds)
                try:
                    self._client = factory(self.address, headers=self._headers)
                except Exception as exc:
                    raise _classify(exc) from exc
            return self._client

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        if self._clock() < self._unavailable_until:
            raise RayUnavailable("the Ray Jobs API did not answer a moment ago; not asking again yet")
        try:
            answer = fn(self._get())
        except RayUnavailable:
            self._unavailable_until = self._clock() + self.backoff_seconds
            self.reachability.failed()
            raise
        except Exception as exc:
            mapped = _classify(exc)
            if isinstance(mapped, RayUnavailable):
                self._unavailable_until = self._clock() + self.backoff_seconds
                self.reachability.failed()
                with self._lock:  # reconnect next time: the head may have come back at a new session
                    self._client = None
            else:
                self.reachability.succeeded()  # it answered, if only to refuse
            raise mapped from exc
        self.reachability.succeeded()
        return answer

    def submit(self, *, run_id: str, entrypoint: str, metadata: dict[str, str],
               env_vars: dict[str, str] | None = None, anywhere: bool = False) -> None:
        """Submit one run. While the head's job agent is starting (a fresh or restarted head), Ray answers
        "No available agent"; that is retried for up to ``submit_retry_seconds`` before it becomes a 503.

        ``env_vars`` join the job's runtime env. ``anywhere``: the driver may run on any node (Ray otherwise
        places every driver on the head), for a driver that needs no file of the head's."""
        runtime_env = {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(int(self.stop_grace_seconds)),
                                    **(env_vars or {})}}
        placement = {"entrypoint_memory": ANYWHERE_DRIVER_MEMORY} if anywhere else {}
        deadline = time.monotonic() + self.submit_retry_seconds
        delay = 0.25
        while True:
            try:
                self._call(lambda c: c.submit_job(
                    entrypoint=entrypoint, submission_id=run_id, metadata=metadata, runtime_env=runtime_env,
                    **placement))
                return
            except RayUnavailable as exc:
                if "No available agent" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(2.0, delay * 2)

    def ping(self) -> str:
        """The Jobs API's version: the cheapest question that proves it answers."""
        return str(self._call(lambda c: c.get_version()))

    def stop(self, run_id: str) -> bool:
        return bool(self._call(lambda c: c.stop_job(run_id)))

    def state(self, run_id: str) -> RayJobState:
        info = self._call(lambda c: c.get_job_info(run_id))
        return RayJobState(str(getattr(info.status, "value", info.status)), info.message)

    def logs(self, run_id: str) -> str:
        return str(self._call(lambda c: c.get_job_logs(run_id)))

    async def tail_logs(self, run_id: str) -> AsyncIterator[str]:
        """The run's log as Ray writes it, chunk by chunk (about one a second), from the start; the
        iterator ends when the job ends. Only a chunk at a time is held, whatever the log's size."""
        client = self._get()
        try:
            async for chunk in client.tail_job_logs(run_id):
                yield chunk
        except Exception as exc:
            raise _classify(exc) from exc

    def delete(self, run_id: str) -> bool:
        """Delete the record of an ended job (Ray refuses to delete one that has not ended)."""
        return bool(self._call(lambda c: c.delete_job(run_id)))

    def states(self) -> dict[str, RayJobState]:
        """Every rayproc job Ray knows about, by submission id (one request)."""
        jobs = self._call(lambda c: c.list_jobs())
        out = {}
        for job in jobs:
            task_id = (job.metadata or {}).get(METADATA_KEY)
            if job.submission_id and task_id:
                out[job.submission_id] = RayJobState(str(getattr(job.status, "value", job.status)), job.message,
                                                     getattr(job, "end_time", None), task_id,
                                                     getattr(job, "driver_node_id", None))
        return out
