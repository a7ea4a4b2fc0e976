"""Operations: ``/-/healthz``, ``/-/readyz`` and ``/metrics``, none of which needs a token.

:func:`install` is the one call the application makes: it adds these routes, the middleware that counts API
requests by route template and status, and the metrics loop that reads the database's figures while the app
runs (see :mod:`serve_app.metrics`).
"""

from __future__ import annotations

import logging
import sqlite3
import time

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs import launcher as L
from jobs.db import StorageUnavailable
from serve_app import errors as E
from serve_app.deps import ServiceDep
from serve_app.metrics import CONTENT_TYPE, METRICS, UNMATCHED_ROUTE, Metrics, MetricsLoop
from rayproc_contract.models import Readiness
from serve_app.schemas import ErrorBody

log = logging.getLogger("rayproc.api")

router = APIRouter(tags=["operations"])


#: Behind Serve, Serve's own HTTP proxy answers ``/-/healthz`` before the app sees it, with this text; the app
#: answers the same where it runs without Serve, so a probe reads one answer everywhere.
LIVE = "success"


@router.get("/-/healthz", response_class=PlainTextResponse, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string", "enum": [LIVE]}}},
          "description": f"`{LIVE}`: the process answers."}})
def liveness() -> PlainTextResponse:
    """Liveness: the process answers. Asks nothing of Ray or the database."""
    return PlainTextResponse(LIVE)


@router.get("/-/readyz", response_model=Readiness,
            responses={503: {"model": ErrorBody, "description": "Ray (`ray_unavailable`) or the database "
                                                                "(`storage_unavailable`) cannot be reached; "
                                                                "the message says which and why."}})
def readiness(*, service: ServiceDep) -> Readiness:
    """Readiness: Ray's Jobs API and the database both answer (each asked with a short deadline)."""
    try:
        service.store.running_counts()
    except (StorageUnavailable, sqlite3.Error) as exc:
        raise E.StorageUnavailable(f"not ready: the database cannot be read: {exc}") from None
    try:
        version = service.reconciler.read_launcher.ping()
    except (L.RayUnavailable, L.RayJobError, L.RayJobNotFound) as exc:
        raise E.RayUnavailable(f"not ready: the Ray Jobs API at {service.launcher.address} does not answer: "
                               f"{type(exc).__name__}") from None
    return Readiness(status="ready", ray="reachable", jobs_api_version=version, database="reachable")


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format."}})
def metrics(request: Request) -> Response:
    """Every rayproc metric in Prometheus' text format (the same figures Ray's own export carries). The
    figures read from the database are read again for each scrape."""
    request.app.state.metrics_loop.refresh_quietly()
    return Response(METRICS.exposition(), media_type=CONTENT_TYPE)


class RequestMetrics:
    """Counts every API request by method, route template (never the raw path) and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: Metrics = METRICS) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            method = scope.get("method", "")
            try:
                self.metrics.requests.inc(method=method, route=route, status=str(status))
                self.metrics.request_duration.observe(time.perf_counter() - started, method=method, route=route)
            except Exception:  # noqa: BLE001 - counting must never fail a request
                log.exception("cannot record the request metric")


def install(app: FastAPI) -> None:
    """Add the operations routes, the request counter and, while the app runs, the metrics loop."""
    app.include_router(router)
    app.add_middleware(RequestMetrics)
    service = app.state.service
    loop = MetricsLoop(service.settings.db_path, interval_seconds=service.settings.metrics_interval_seconds)
    app.state.metrics_loop = loop
    app.router.on_startup.append(loop.start)
    app.router.on_shutdown.append(loop.close)

