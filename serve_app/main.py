"""The FastAPI application: routers, one error shape, request limits."""

from __future__ import annotations

import logging
import uuid

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.db import StorageFull, StorageUnavailable, storage_error
from serve_app import errors as E
from serve_app.accounts import Accounts
from rayproc_contract.models import Health
from serve_app.deps import reject_conflicting_repeats
from serve_app.idempotency import IdempotencyKeys
from serve_app.routes import admin, agent, tasks, templates
from serve_app.routes import imports as imports_routes
from serve_app.routes import ops
from serve_app.service import TaskService

log = logging.getLogger("rayproc.api")


def create_app(service: TaskService, accounts: Accounts) -> FastAPI:
    # fastapi-offline serves Swagger UI's files from the installed package, not from a CDN, so /docs works on a
    # cluster without internet access. No /redoc: ReDoc's bundle still fetches its logo from its maker's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        # Swagger UI's default sends the document to an outside validator (for a host other than localhost).
        swagger_ui_parameters={"validatorUrl": None},
        title="rayproc",
        summary="Image-dataset processing on a Ray cluster, with a ModelArts-compatible processor-task API.",
        version="0.1.0",
        dependencies=[Depends(reject_conflicting_repeats)],
    )
    app.state.service = service
    app.state.accounts = accounts
    app.state.imports = service.imports
    app.state.idempotency = IdempotencyKeys(service.settings.database,
                                            ttl_seconds=service.settings.idempotency_ttl_seconds)
    app.state.auth_enabled = service.settings.auth_enabled
    app.include_router(templates.router)  # before tasks: /processor-tasks/items is not a task id
    app.include_router(tasks.router)
    app.include_router(admin.router)
    app.include_router(imports_routes.router)
    app.include_router(agent.router)
    ops.install(app)  # /-/healthz, /-/readyz, /metrics, and the request metrics

    @app.get("/healthz", tags=["service"], response_model=Health)
    def healthz() -> dict:
        """Liveness, and whether the Ray Jobs API answers (asked with the read deadline, so this answers
        within a second even when Ray does not)."""
        try:
            service.reconciler.read_launcher.states()
            ray = "reachable"
        except Exception:
            ray = "unreachable"
        return {"status": "ok", "ray": ray}

    _install_error_handlers(app)
    _install_openapi(app)
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_body_bytes,
                       import_max_bytes=service.settings.max_import_bytes)
    app.add_middleware(RefuseControlCharacters)
    return app


def _error(exc: E.ServiceError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content=exc.body(), headers=exc.headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(E.ServiceError)
    async def service_error(request: Request, exc: E.ServiceError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            where = ".".join(loc) or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error(E.InvalidRequest("; ".join(problems[:5]) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(E.NotFound(f"no such endpoint: {request.method} {request.url.path}"))
        if exc.status_code == 400:
            return _error(E.InvalidRequest(str(exc.detail)))
        if exc.status_code == 405:
            allowed = _allowed_methods(app, request.scope)
            answer = _error(E.MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; "
                                               f"allowed: {allowed}"))
            answer.headers["Allow"] = allowed
            return answer
        return _error(E.ServiceError(str(exc.detail), status_code=exc.status_code, error_code="http_error"))

    @app.exception_handler(StorageUnavailable)
    async def storage_unavailable(request: Request, exc: StorageUnavailable) -> JSONResponse:
        return _storage_answer(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        typed = storage_error(exc)  # a file the service writes outside the database (an import's payload)
        if typed is not None:
            return _storage_answer(request, typed)
        ref = uuid.uuid4().hex[:12]
        log.exception("unexpected error (reference %s) on %s %s", ref, request.method, request.url.path)
        return _error(E.InternalError(f"unexpected server error; the service log has details under reference {ref}"))


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method some route answers on this path (Starlette's 405 names only the first route's)."""
    allowed = [method for method in _METHODS
               if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in app.router.routes)]
    return ", ".join(allowed)


def _install_openapi(app: FastAPI) -> None:
    """The document as the service really answers: a malformed request is a 400 (listed per operation),
    never FastAPI's 422, which this service does not send."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes, tags=app.openapi_tags)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for operations in schema.get("paths", {}).values():
                for method, operation in operations.items():
                    operation.get("responses", {}).pop("422", None)
                    _shared_errors(method, operation)
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            for model in imports_routes.IMPORT_BODY_MODELS:
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(model_schema.pop("$defs", {}))
                components[model.__name__] = model_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _shared_errors(method: str, operation: dict) -> None:
    """Document the errors the shared layers answer on any operation (the app's query check, the token check,
    project access, the body limit), for operations whose route does not list them itself."""
    codes = {400}  # a malformed query or body; a scalar query parameter repeated with different values
    if operation.get("security"):
        codes.add(401)
        if method != "get":
            codes.add(403)  # a viewer's role
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        codes.add(404)  # an unknown resource, or a project the caller does not belong to
    if "requestBody" in operation:
        codes.add(413)
    responses = operation.setdefault("responses", {})
    for code, response in responses.items():
        if code >= "400":  # errors are the one JSON body, whatever the route's own answer is (HTML, text)
            response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for code in sorted(codes):
        if str(code) not in responses:
            responses[str(code)] = {
                "description": E.error_responses(code)[code]["description"],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}


def _storage_answer(request: Request, exc: StorageUnavailable) -> JSONResponse:
    """507 for a full data directory, 503 for one that cannot be written; the database rolled back whole."""
    log.error("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
    error = E.InsufficientStorage if isinstance(exc, StorageFull) else E.StorageUnavailable
    return _error(error(f"{exc}; nothing was changed"))


class RefuseControlCharacters:
    """A path holding a control character (``%0A``, ``%00`` ...) is a 400 before any route sees it.

    No id and no route has one, and Starlette's routes end in ``$``, which also matches before a final newline:
    without this, ``.../processor-tasks/abc%0A`` would be read as the task ``abc``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
            error = E.InvalidResourceId("Invalid ID format: a path holds no control characters (such as %0A); "
                                        "ids are letters, digits, '-' and '_'")
            await _error(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int, import_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.import_max_bytes = import_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Imports carry data; every other call carries a small JSON body.
        limit = self.import_max_bytes if scope.get("path", "").endswith("/import") else self.max_bytes
        too_large = E.PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _error(too_large)(scope, receive, send)
                    return
        # Read the whole body first (it is small by definition) so an oversize one is refused before
        # any route sees it; then replay it to the app.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                await _error(too_large)(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
