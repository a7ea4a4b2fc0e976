"""The Ray Serve deployment that hosts the API, and the helpers that start it."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from ray import serve

from serve_app import private_files
from serve_app.accounts import Accounts
from serve_app.assembly import build_job_records, build_service
from serve_app.main import create_app
from serve_app.settings import Settings

APP_NAME = "rayproc"
log = logging.getLogger("rayproc")


#: The response header naming the replica that answered (Serve's replica id): several replicas share one
#: PostgreSQL database, and an operator (or a test) can tell which one served a request.
REPLICA_HEADER = "X-Rayproc-Replica"


#: Ray starts worker processes at nice 15 (its worker_niceness), actors included: the API replica, Serve's proxy
#: that every request passes through and Serve's controller then yielded the cores to everything else on the head,
#: the job drivers (nice 10, below the API by design) first. They ask for 0, through the variable the raylet reads
#: when it starts a worker, as Ray's Jobs API does for its job supervisors. Serve's controller passes its own
#: runtime env on to the proxies it starts; ``deploy/serve.yaml`` sets the same ``controller_options``.
API_PRIORITY_ENV = {"env_vars": {"RAY_worker_niceness": "0"}}
SERVE_CONTROLLER_OPTIONS = {"runtime_env": API_PRIORITY_ENV}


# Replicas are pinned to the head node: the SQLite file lives there, and so do an import's payload files and the
# dashboard the replicas reach at its local address. Several replicas (api_replicas, PostgreSQL only) share it.
@serve.deployment(
    name="rayproc-api",
    num_replicas=1,
    ray_actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001}, "runtime_env": API_PRIORITY_ENV},
)
@serve.ingress()
class RayprocApi:
    def __init__(self, settings: dict) -> None:
        self.service = build_service(Settings.model_validate(settings))
        self.accounts = Accounts(self.service.settings.database)
        self.service.reconciler.reconcile_all()  # settle runs that ended while the service was down
        self.service.reconciler.start()
        self.service.dispatcher.start()  # after the settling above, which queues retries of runs it failed
        self.job_records = build_job_records(self.service)
        self.job_records.start()

    @serve.multiplexed(max_num_models_per_replica=256)
    async def _keep(self, key: str) -> str:
        return key

    def __serve_build_asgi_app__(self):
        app = create_app(self.service, self.accounts)
        replica = serve.get_replica_context().replica_id.unique_id

        @app.middleware("http")
        async def name_the_replica(request, call_next):
            # A client that sends Serve's `serve_multiplexed_model_id` header keeps to the replica that first
            # answered that value (Serve routes a "model" to the replica that holds it): sticky routing.
            key = serve.get_multiplexed_model_id()
            if key:
                await self._keep(key)
            response = await call_next(request)
            response.headers[REPLICA_HEADER] = replica
            return response

        return app

    def __del__(self) -> None:
        self.service.reconciler.close()
        self.service.dispatcher.close()
        self.job_records.close()


def build_app(settings: Settings):
    """The Serve application for ``settings`` (paths already resolved).

    Serve's default of 5 requests at once per replica would let a few calls waiting on a slow Ray hold
    back every read; the database reads need no Ray, so the replica takes many more."""
    return RayprocApi.options(max_ongoing_requests=settings.max_ongoing_requests,
                              num_replicas=settings.api_replicas).bind(_handed_over(settings))


def _handed_over(settings: Settings) -> dict:
    """``settings`` as the replicas receive them: JSON, with the database URL in the clear (a SecretStr dumps
    as stars). Serve keeps the bound arguments in its controller; see docs/architecture.md."""
    data = settings.model_dump(mode="json")
    if settings.database_url is not None:
        data["database_url"] = settings.database_url.get_secret_value()
    return data


@dataclass(frozen=True)
class RunningService:
    url: str
    docs_url: str
    dashboard_url: str
    settings: Settings
    initial_token_file: Path | None = None
    #: The GCS address of the cluster the service runs on (the one its job drivers join).
    gcs_address: str = ""


#: How often ``rayproc serve`` looks for its cluster, and how many looks in a row must fail before it exits.
WATCH_INTERVAL_SECONDS = 1.0
WATCH_MISSES = 3


class RayWatch:
    """Tells when the Ray cluster under the service has gone.

    Serve runs inside Ray: when the head goes, the API goes with it, and the process is left alive
    answering nothing. Rather than rejoin from a process whose Ray driver state belongs to the old
    cluster, ``rayproc serve`` exits as soon as this says the cluster is lost, and a supervisor starts
    it again on the new head. Lost means: the GCS
    or the service's own HTTP port refuses connections ``misses`` looks in a row (a slow answer on a
    loaded machine is not a refusal; the own port catches a head that came back at the same address).
    """

    def __init__(self, gcs_address: str, http_host: str, http_port: int, *, misses: int = WATCH_MISSES,
                 timeout_seconds: float = 1.0) -> None:
        host, _, port = gcs_address.rpartition(":")
        self._targets = [(host, int(port)), (http_host, http_port)]
        self.misses = misses
        self.timeout_seconds = timeout_seconds
        self._missed = 0

    def lost(self) -> bool:
        """One look; True once ``misses`` looks in a row found the cluster or the API gone."""
        self._missed = self._missed + 1 if any(self._refused(t) for t in self._targets) else 0
        return self._missed >= self.misses

    def _refused(self, target: tuple[str, int]) -> bool:
        try:
            with socket.create_connection(target, timeout=self.timeout_seconds):
                return False
        except TimeoutError:
            return False
        except OSError:
            return True


def start(settings: Settings) -> RunningService:
    """Start (or join) Ray, start Serve on ``settings.host:port`` and deploy the API."""
    import ray

    settings = settings.resolved()
    settings.data_dir.mkdir(mode=private_files.PRIVATE_DIR, parents=True, exist_ok=True)
    sqlite_file = settings.db_path if settings.database_url is None else None
    private_files.protect_state(settings.data_dir, sqlite_file, [settings.initial_token_file])
    if sqlite_file is not None:
        private_files.create_private(sqlite_file)
    if not settings.ray_address:
        _check_local_head_ports()
        # Ray writes a new cluster token with the process umask: inside a private folder from the start.
        private_files.default_ray_dir().mkdir(mode=private_files.PRIVATE_DIR, exist_ok=True)
    private_files.protect_ray_token()
    if settings.ray_address:
        ctx = ray.init(address=settings.ray_address, logging_level=logging.WARNING)
    else:
        # address="local": always a new head of our own, never whatever cluster `ray start` left running.
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host="127.0.0.1",
                       dashboard_port=settings.dashboard_port, logging_level=logging.WARNING)
        settings = settings.model_copy(update={"dashboard_url": f"http://{ctx.dashboard_url}"})
    private_files.protect_ray_token()  # the token a new local head has just written
    if not settings.cluster_address:
        settings = settings.model_copy(update={"cluster_address": ctx.address_info["gcs_address"]})
    serve.start(http_options={"host": settings.host, "port": settings.port},
                controller_options=SERVE_CONTROLLER_OPTIONS)
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    initial_token = None
    if settings.auth_enabled:
        initial_token = Accounts(settings.database).ensure_initial_admin(settings.initial_token_file)
    url = f"http://{settings.host}:{settings.port}"
    dashboard = settings.dashboard_url if settings.ray_address else f"http://{ctx.dashboard_url}"
    return RunningService(url=url, docs_url=f"{url}/docs", dashboard_url=dashboard, settings=settings,
                          initial_token_file=initial_token, gcs_address=settings.cluster_address or "")


class LocalHeadConflict(RuntimeError):
    pass


def _check_local_head_ports() -> None:
    """A second Ray instance on one host collides on its dashboard agent port and then cannot run
    jobs ("No available agent"). Say so before starting rather than fail every task later."""
    import socket

    from ray._private.ray_constants import DEFAULT_DASHBOARD_AGENT_LISTEN_PORT as port

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # only a listener counts, not TIME_WAIT
        try:
            s.bind(("", port))
        except OSError:
            raise LocalHeadConflict(
                f"port {port} (Ray's dashboard agent) is in use, most likely by another Ray instance on this "
                "machine; stop it (`ray stop`) or join it with --ray-address") from None


def stop() -> None:
    import ray

    try:
        serve.shutdown()
    finally:
        ray.shutdown()
