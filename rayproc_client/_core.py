"""The HTTP API as sans-I/O operations, shared by :class:`~rayproc_client.Client` and
:class:`~rayproc_client.AsyncClient`.

Every API call is written once here as a generator (an :data:`Op`). It builds the request, *yields* it, receives
the answer (or has the ``httpx`` transport error thrown into it), and returns the parsed value; to back off before a
retry it yields a :class:`Pause`. The clients only carry out those two steps, one with ``httpx.Client`` and
``time.sleep``, the other with ``httpx.AsyncClient`` and ``await asyncio.sleep``, so request building, the retry
policy, error translation and parsing exist once, and a test can drive an operation with no I/O at all.

This module is private: its names may change between releases.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from rayproc_client.errors import translate
from rayproc_client.models import (
    ClusterInfo,
    Health,
    IssuedToken,
    Membership,
    ProjectInfo,
    Role,
    TaskInfo,
    TaskPage,
    TemplateInfo,
    TemplateItem,
    TokenInfo,
    UserInfo,
    Whoami,
)
from rayproc_contract.idempotency import HEADER as IDEMPOTENCY_HEADER
from rayproc_contract.idempotency import new_key, validate_key
from rayproc_contract.ids import validate_resource_id
from rayproc_contract.query import MAX_LIMIT, ListQuery

__version__ = "0.1.0"

log = logging.getLogger("rayproc_client")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "RAYPROC_URL"
TOKEN_ENV = "RAYPROC_TOKEN"
MAX_PAGE_SIZE = MAX_LIMIT
MAX_BACKOFF_SECONDS = 30.0
#: Operator params either as the API's list (``[{"id": "image_features", "params": {...}}]``) or as a mapping
#: from operator id to its params (``{"image_features": {"histogram_bins": 10}}``).
OperatorParams = Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]
PathLike = str | os.PathLike[str]


# ----- the two steps an operation asks its driver for -----------------------------------------


@dataclass(frozen=True)
class Request:
    """Send this and reply with the ``httpx.Response`` (or throw the ``httpx.TransportError``)."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    #: Multipart files: ``{"file": (name, bytes)}``.
    files: Any = None
    #: Headers besides the client's own (an ``Idempotency-Key``).
    headers: tuple[tuple[str, str], ...] = ()
    #: Repeating it leaves the service as one call would: retried on 503 and on connection errors.
    idempotent: bool = False


@dataclass(frozen=True)
class Pause:
    """Sleep this long, then reply with ``None``."""

    seconds: float


Step = Request | Pause
Op = Generator[Step, httpx.Response | None, T]
Parse = Callable[[httpx.Response], T]


# ----- configuration --------------------------------------------------------------------------


def resolve_connection(base_url: str | None, token: str | None,
                       http_base_url: httpx.URL | None) -> tuple[str, str | None]:
    """The base URL and token to use. The one place that reads the environment.

    URL: the argument, else the injected ``httpx`` client's own ``base_url``, else ``RAYPROC_URL``, else
    :data:`DEFAULT_URL`. Token: the argument, else ``RAYPROC_TOKEN``, else none (a ``--no-auth`` service).
    """
    if base_url is None and http_base_url is not None and str(http_base_url):
        base_url = str(http_base_url)
    if base_url is None:
        base_url = os.environ.get(URL_ENV) or DEFAULT_URL
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    return base_url.rstrip("/"), token


@dataclass(frozen=True)
class RetryPolicy:
    """Retry idempotent calls on a 503 answer or a connection error, ``retries`` times at most, after
    ``backoff * 2**attempt`` seconds (capped at :data:`MAX_BACKOFF_SECONDS`)."""

    retries: int = 3
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if not self.backoff >= 0:
            raise ValueError(f"backoff must be 0 or more seconds, got {self.backoff}")

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff * 2 ** attempt, MAX_BACKOFF_SECONDS))

    def should_retry(self, request: Request, outcome: httpx.Response | httpx.TransportError, attempt: int) -> bool:
        if not request.idempotent or attempt >= self.retries:
            return False
        if isinstance(outcome, httpx.Response):
            return outcome.status_code == 503
        # The same set errors.translate() calls ConnectError; a read timeout is not retried (the service may
        # still be working on the first call, and a retry would multiply the caller's wait).
        return isinstance(outcome, (httpx.NetworkError, httpx.ConnectTimeout, httpx.RemoteProtocolError))


# ----- one exchange, with retries and the one error translation -------------------------------


def exchange(request: Request, parse: Parse[T], policy: RetryPolicy) -> Op[T]:
    attempt = 0
    while True:
        outcome: httpx.Response | httpx.TransportError
        try:
            reply = yield request
        except httpx.TransportError as exc:
            outcome = exc
        else:
            if reply is None:
                raise TypeError("the driver must reply to a Request with an httpx.Response")
            outcome = reply
            if reply.is_success:
                try:
                    return parse(reply)
                except ValueError as exc:  # not JSON, or not the promised shape (pydantic's errors included)
                    raise translate(reply) from exc
        if not policy.should_retry(request, outcome, attempt):
            cause = outcome if isinstance(outcome, httpx.TransportError) else None
            raise translate(outcome) from cause
        delay = policy.delay(attempt)
        attempt += 1
        what = f"status {outcome.status_code}" if isinstance(outcome, httpx.Response) else type(outcome).__name__
        log.debug("retry %d/%d of %s %s in %.2fs after %s", attempt, policy.retries, request.method, request.path,
                  delay, what)
        yield Pause(delay)


# ----- parsing ---------------------------------------------------------------------------------


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def _model(model: type[M]) -> Parse[M]:
    return lambda response: model.model_validate(_json_object(response))


def _listed(key: str, model: type[M]) -> Parse[list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda response: adapter.validate_python(_json_object(response).get(key))


def _task_id(response: httpx.Response) -> str:
    task_id = _json_object(response).get("task_id")
    if not isinstance(task_id, str):
        raise ValueError("no task_id in the answer")
    return task_id


def _nothing(response: httpx.Response) -> None:
    return None


def _text(response: httpx.Response) -> str:
    return response.text


# ----- requests --------------------------------------------------------------------------------


def validate_task_id(value: str | None) -> str:
    """Check a task id by the service's own rule, so a bad id fails here with the
    :class:`~rayproc_client.errors.InvalidResourceId` the service would answer, and no request is sent."""
    return validate_resource_id(value, "task")


def _segment(value: str) -> str:
    # Project ids, user names and token ids go into paths: encoded, so none of them can change the path.
    return quote(str(value), safe="")


def _operator_params(params: OperatorParams | None) -> list[dict[str, Any]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [{"id": str(op), "params": dict(values)} for op, values in params.items()]
    if isinstance(params, (str, bytes)):
        raise TypeError("operator_params must be a list of {'id', 'params'} or a mapping of id to params")
    return [dict(op) for op in params]


def create_body(*, name: str, source: PathLike, template: str, operator_params: OperatorParams | None,
                description: str, source_type: str, work_path: PathLike | None, version_id: str | None,
                workspace_id: str, chunk_size: int | None) -> dict[str, Any]:
    """The JSON body of ``POST /v2/{project_id}/processor-tasks``. The service validates every field."""
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "data_source": {"type": source_type, "source": os.fspath(source)},
        "template": {"id": template, "operator_params": _operator_params(operator_params)},
        "workspace_id": workspace_id,
    }
    if work_path is not None:
        body["work_path"] = {"type": "OBS", "path": os.fspath(work_path)}
    if version_id is not None:
        body["version_id"] = version_id
    if chunk_size is not None:
        body["execution"] = {"chunk_size": chunk_size}
    return body


def _keyed(idempotency_key: str | None) -> tuple[tuple[str, str], ...]:
    """The ``Idempotency-Key`` header of one create: the caller's key (checked here by the service's rule), or a
    fresh one. Made once per call, so the call's retries repeat it."""
    key = new_key() if idempotency_key is None else validate_key(idempotency_key)
    return ((IDEMPOTENCY_HEADER, key),)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def list_query(*, page_size: int, order: str, sort_by: str, status: int | None, task_type: str | None,
               task_name: str | None, source: str | None, source_type: str | None, version_id: tuple[str, ...],
               workspace_id: str, query_current: bool, return_result: bool) -> ListQuery:
    """The list endpoint's query for the first page. ``page_size`` is the API's ``limit`` (1-100).

    Only the page size is checked here (paging relies on it). The filters are sent as given, unvalidated: the
    service judges them, and a newer service may accept values (a new task type, a new sort key) this release
    does not know.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}")
    return ListQuery.model_construct(
        limit=page_size, offset=0, order=order, sort_by=sort_by, status=status, task_type=task_type,
        task_name=task_name, source=source, source_type=source_type, version_id=list(version_id),
        workspace_id=workspace_id, query_current=query_current, return_result=return_result)


def version_ids(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass
class Pager:
    """Walks a listing page by page (``offset`` is a page index). Stops after a short or empty page or once
    ``count`` is reached, and drops a task already yielded (a task created meanwhile shifts later pages)."""

    first: ListQuery
    page: int = 0
    done: bool = False
    _seen: set[str] = field(default_factory=set)

    @property
    def query(self) -> ListQuery:
        """The query for the next page."""
        return self.first.model_copy(update={"offset": self.page})

    def accept(self, answer: TaskPage) -> list[TaskInfo]:
        fresh = [t for t in answer.tasks if t.task_id not in self._seen]
        self._seen.update(t.task_id for t in fresh)
        self.page += 1
        self.done = len(answer.tasks) < self.first.limit or self.page * self.first.limit >= answer.count
        return fresh


# ----- the API ---------------------------------------------------------------------------------


class Api:
    """Every endpoint as an :data:`Op`, plus what a driver needs to send a :class:`Request`."""

    def __init__(self, base_url: str, token: str | None, policy: RetryPolicy) -> None:
        self.base_url = base_url
        self.policy = policy
        self.headers = {"User-Agent": f"rayproc-client/{__version__}", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"

    def send_args(self, request: Request) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        headers = {**self.headers, **dict(request.headers)} if request.headers else self.headers
        args: dict[str, Any] = {"method": request.method, "url": self.base_url + request.path, "headers": headers}
        if request.params:
            args["params"] = list(request.params)
        if request.json is not None:
            args["json"] = request.json
        if request.files is not None:
            args["files"] = request.files
        return args

    def _call(self, request: Request, parse: Parse[T]) -> Op[T]:
        return exchange(request, parse, self.policy)

    # ----- processor tasks -----

    @staticmethod
    def _tasks(project_id: str) -> str:
        return f"/v2/{_segment(project_id)}/processor-tasks"

    def create_task(self, project_id: str, body: dict[str, Any], idempotency_key: str | None = None) -> Op[TaskInfo]:
        # Retried like a read: every attempt carries the same key, so the service creates the task once.
        request = Request("POST", self._tasks(project_id), json=body, headers=_keyed(idempotency_key),
                          idempotent=True)
        task_id = yield from self._call(request, _task_id)
        return (yield from self.get_task(project_id, task_id))

    def get_task(self, project_id: str, task_id: str, return_result: bool = True) -> Op[TaskInfo]:
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}"
        params = () if return_result else (("return_result", "false"),)
        return self._call(Request("GET", path, params, idempotent=True), _model(TaskInfo))

    def list_page(self, project_id: str, query: ListQuery) -> Op[TaskPage]:
        request = Request("GET", self._tasks(project_id), query.query_pairs(), idempotent=True)
        return self._call(request, _model(TaskPage))

    def delete_task(self, project_id: str, task_id: str) -> Op[None]:
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}"
        return self._call(Request("DELETE", path, idempotent=True), _nothing)

    def stop_task(self, project_id: str, task_id: str) -> Op[TaskInfo]:
        # Retried: repeating a stop leaves the task as one stop does, and on a 503 the service changed nothing.
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}/stop"
        return self._call(Request("POST", path, idempotent=True), _model(TaskInfo))

    def resume_task(self, project_id: str, task_id: str) -> Op[TaskInfo]:
        # Not retried: a resume starts a new Ray job, like a create.
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}/resume"
        return self._call(Request("POST", path), _model(TaskInfo))

    def task_report(self, project_id: str, task_id: str) -> Op[str]:
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}/report"
        return self._call(Request("GET", path, idempotent=True), _text)

    def task_logs(self, project_id: str, task_id: str, run: int | None) -> Op[str]:
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}/logs"
        params = () if run is None else (("run", str(run)),)
        return self._call(Request("GET", path, params, idempotent=True), _text)

    def task_logs_follow(self, project_id: str, task_id: str, run: int | None) -> Request:
        """The request of a followed log (streamed; the client sends it itself, not as an :data:`Op`)."""
        path = f"{self._tasks(project_id)}/{validate_task_id(task_id)}/logs"
        params = (("follow", "true"),) if run is None else (("follow", "true"), ("run", str(run)))
        return Request("GET", path, params, headers=(("Accept", "text/plain"),))

    def templates(self, project_id: str) -> Op[list[TemplateInfo]]:
        request = Request("GET", f"/v2/{_segment(project_id)}/processor-templates", idempotent=True)
        return self._call(request, _listed("templates", TemplateInfo))

    def template_items(self, project_id: str) -> Op[list[TemplateItem]]:
        request = Request("GET", f"{self._tasks(project_id)}/items", idempotent=True)
        return self._call(request, _listed("items", TemplateItem))

    # ----- accounts and the cluster -----

    def whoami(self) -> Op[Whoami]:
        return self._call(Request("GET", "/v1/whoami", idempotent=True), _model(Whoami))

    def projects(self) -> Op[list[ProjectInfo]]:
        return self._call(Request("GET", "/v1/projects", idempotent=True), _listed("projects", ProjectInfo))

    def users(self) -> Op[list[UserInfo]]:
        return self._call(Request("GET", "/v1/users", idempotent=True), _listed("users", UserInfo))

    def create_user(self, name: str, is_admin: bool) -> Op[UserInfo]:
        request = Request("POST", "/v1/users", json={"name": name, "is_admin": is_admin})
        return self._call(request, _model(UserInfo))

    def create_token(self, user: str, name: str) -> Op[IssuedToken]:
        request = Request("POST", f"/v1/users/{_segment(user)}/tokens", json={"name": name})
        return self._call(request, _model(IssuedToken))

    def tokens(self) -> Op[list[TokenInfo]]:
        return self._call(Request("GET", "/v1/tokens", idempotent=True), _listed("tokens", TokenInfo))

    def revoke_token(self, token_id: str) -> Op[None]:
        return self._call(Request("DELETE", f"/v1/tokens/{_segment(token_id)}", idempotent=True), _nothing)

    def create_project(self, project_id: str, name: str) -> Op[ProjectInfo]:
        request = Request("POST", "/v1/projects", json={"project_id": project_id, "name": name})
        return self._call(request, _model(ProjectInfo))

    def set_member(self, project_id: str, user: str, role: Role) -> Op[Membership]:
        request = Request("PUT", f"/v1/projects/{_segment(project_id)}/members/{_segment(user)}",
                          json={"role": role}, idempotent=True)
        return self._call(request, _model(Membership))

    def remove_member(self, project_id: str, user: str) -> Op[None]:
        request = Request("DELETE", f"/v1/projects/{_segment(project_id)}/members/{_segment(user)}",
                          idempotent=True)
        return self._call(request, _nothing)

    def cluster(self) -> Op[ClusterInfo]:
        return self._call(Request("GET", "/v1/cluster", idempotent=True), _model(ClusterInfo))

    def health(self) -> Op[Health]:
        return self._call(Request("GET", "/healthz", idempotent=True), _model(Health))

    # ----- imports (Label Studio's) -----

    def _import(self, project_id: str, dataset: str, return_task_ids: bool, idempotency_key: str | None,
                **body: Any) -> Op[int]:
        # Retried like a read: every attempt carries the same key, so the service imports the items once.
        params = (("dataset", dataset), ("return_task_ids", _flag(return_task_ids)))
        request = Request("POST", f"/api/projects/{_segment(project_id)}/import", params,
                          headers=_keyed(idempotency_key), idempotent=True, **body)
        return self._call(request, lambda r: int(_json_object(r)["import"]))

    def import_items(self, project_id: str, items: list[dict[str, Any]], dataset: str,
                     return_task_ids: bool, idempotency_key: str | None = None) -> Op[int]:
        return self._import(project_id, dataset, return_task_ids, idempotency_key, json=items)

    def import_file(self, project_id: str, name: str, content: bytes, dataset: str,
                    return_task_ids: bool, idempotency_key: str | None = None) -> Op[int]:
        return self._import(project_id, dataset, return_task_ids, idempotency_key, files={"file": (name, content)})

    def import_folder(self, project_id: str, folder: str, recursive: bool, metadata_sheet: str | None,
                      dataset: str, return_task_ids: bool, idempotency_key: str | None = None) -> Op[int]:
        body: dict[str, Any] = {"folder": folder, "recursive": recursive}
        if metadata_sheet is not None:
            body["metadata_sheet"] = metadata_sheet
        return self._import(project_id, dataset, return_task_ids, idempotency_key, json=body)

    def get_import(self, project_id: str, import_id: int) -> Op[dict[str, Any]]:
        path = f"/api/projects/{_segment(project_id)}/imports/{int(import_id)}/"
        return self._call(Request("GET", path, idempotent=True), _json_object)
