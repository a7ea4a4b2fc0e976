"""The clients: :class:`Client` (blocking, ``httpx.Client``) and :class:`AsyncClient` (``asyncio``,
``httpx.AsyncClient``).

Both carry out the same operations from :mod:`rayproc_client._core`; each method here is a one-line shell that runs
its operation and wraps the answer. :class:`Client` documents every method in full; :class:`AsyncClient`'s methods
take the same arguments, answer the same values (an :class:`~rayproc_client.AsyncTask` where the sync client answers
a :class:`~rayproc_client.Task`) and raise the same errors, awaited.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from rayproc_client._core import (
    MAX_PAGE_SIZE,
    Api,
    Op,
    OperatorParams,
    Pager,
    PathLike,
    Pause,
    RetryPolicy,
    create_body,
    list_query,
    resolve_connection,
    version_ids,
)
from rayproc_client.models import (
    ClusterInfo,
    Health,
    IssuedToken,
    Membership,
    ProjectInfo,
    Role,
    TaskInfo,
    TemplateInfo,
    TemplateItem,
    TokenInfo,
    UserInfo,
    Whoami,
)
from rayproc_client.errors import translate
from rayproc_client.task import AsyncTask, Task
from rayproc_contract.models import SourceType
from rayproc_contract.query import ListQuery, Order, SortBy
from rayproc_contract.status import TaskTypeName

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")


class Client:
    """A blocking client for rayproc's HTTP API.

    ::

        from rayproc_client import Client

        with Client("http://127.0.0.1:8000", token) as rp:
            task = rp.create_task("demo", name="first-look", source="/data/samples", chunk_size=8)
            task.wait_till_done(timeout_seconds=600)
            print(task.result["features"]["brightness"])

    Args:
        base_url: the service's address; by default the injected ``http`` client's ``base_url`` if it has one,
            else ``RAYPROC_URL``, else ``http://127.0.0.1:8000``.
        token: an API token, sent as ``Authorization: Token <token>``; by default ``RAYPROC_TOKEN``; none at all
            for a service started with ``--no-auth``.
        timeout: seconds to wait for an answer (for the ``httpx.Client`` this creates; an injected one keeps its
            own).
        http: an ``httpx.Client`` to send with (a ``fastapi.testclient.TestClient`` works, as does one with an
            ``httpx.MockTransport``). It is not closed by :meth:`close`; one the client creates is.
        retries: how many times an idempotent call is retried after a 503 answer or a connection error
            (0 disables retries). Reads, deletes, ``set_member``, :meth:`stop_job`, and the task creates and
            imports (each sent with one ``Idempotency-Key`` for all its attempts) are retried; the other creates
            and :meth:`resume_job` never are (see each method).
        backoff: seconds before the first retry; each further retry waits twice as long (at most 30 s).
        sleep: how the client waits between retries and in ``wait_till_done`` (``time.sleep``); tests pass a fake.
        clock: what ``wait_till_done`` measures time with (``time.monotonic``).

    Every method raises a :class:`~rayproc_client.errors.ClientError` subclass when the service answers an error
    (the very class the service raised, found by its ``error_code``) or cannot be reached.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 http: httpx.Client | None = None, retries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        url, token = resolve_connection(base_url, token, http.base_url if http is not None else None)
        self._api = Api(url, token, RetryPolicy(retries, backoff))
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self.sleep = sleep
        self.clock = clock

    @property
    def base_url(self) -> str:
        return self._api.base_url

    def __repr__(self) -> str:
        return f"<Client {self.base_url}>"

    def close(self) -> None:
        """Close the ``httpx.Client`` this client created (an injected one stays open)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _run(self, op: Op[T]) -> T:
        """Carry out an operation's steps: send its requests, sleep its pauses, hand back what it returns."""
        reply: httpx.Response | None = None
        failure: httpx.TransportError | None = None
        while True:
            try:
                step = op.throw(failure) if failure is not None else op.send(reply)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            reply, failure = None, None
            if isinstance(step, Pause):
                self.sleep(step.seconds)
                continue
            try:
                reply = self._http.request(**self._api.send_args(step))
            except httpx.TransportError as exc:
                failure = exc

    def _task(self, project_id: str, op: Op[TaskInfo]) -> Task:
        return Task(self, project_id, self._run(op))

    # ----- processor tasks ------------------------------------------------------------------

    def create_task(self, project_id: str, *, name: str, source: PathLike,
                    template: TaskTypeName | str = "sys_data_analyse", operator_params: OperatorParams | None = None,
                    description: str = "", source_type: SourceType = "OBS", work_path: PathLike | None = None,
                    version_id: str | None = None, workspace_id: str = "0", chunk_size: int | None = None,
                    idempotency_key: str | None = None) -> Task:
        """Create a processing task and answer it as the service then describes it (usually status 0).

        The service answers at once; the work runs as a Ray job. Follow it with :meth:`Task.wait_till_done`.

        Args:
            project_id: the project to create it in (you need the ``member`` role in it, or be an admin).
            name: the task's name (1-64 characters).
            source: for ``source_type="OBS"``, a folder, an image or a ``.jsonl`` manifest on the service's
                machine, under its allowed roots; for ``"TASK"``, the id of another task of the project, whose input
                is processed again.
            template: the task type: ``sys_data_analyse`` (default), ``sys_data_cleaning``,
                ``sys_data_augmentation``, ``sys_data_validation`` or ``sys_data_selection``.
            operator_params: the operators to run and their params, as the API's list
                (``[{"id": "image_features", "params": {"histogram_bins": 10}}]``) or as a mapping
                (``{"image_features": {"histogram_bins": 10}}``); by default the template's default operators.
                :meth:`templates` lists every operator and its params.
            description: free text, at most 256 characters.
            source_type: ``"OBS"`` or ``"TASK"`` (``"DATASET"`` and ``"CUSTOM"`` are refused by this release).
            work_path: a folder for the outputs (they go to ``<work_path>/<task_id>``); by default under the
                service's data directory.
            version_id: a dataset version id to record with the task.
            workspace_id: the ModelArts workspace (``"0"``).
            chunk_size: items per Ray task (1-10,000); by default the service's setting.
            idempotency_key: the create's ``Idempotency-Key`` (1-255 letters, digits, ``-``, ``_``, ``.``, ``:``);
                by default a fresh random one. Pass your own to make a create safe to repeat across processes:
                the service answers a repeat (same key, same arguments, within 24 hours) with the task it first
                created.

        Raises:
            InvalidParameter: unknown template or operator, bad operator params (the message names the field),
                missing source.
            PathNotAllowed: ``source`` or ``work_path`` outside the service's allowed roots.
            Forbidden: a viewer of the project.
            NotFound: no such project, or one you do not belong to.

        The create carries an ``Idempotency-Key``, so it is retried as reads are (after a 503 or a connection
        error): a retry whose first attempt did create the task gets that task back, not a second one. The new
        task is then read back (a read, retried too).
        """
        body = create_body(name=name, source=source, template=template, operator_params=operator_params,
                           description=description, source_type=source_type, work_path=work_path,
                           version_id=version_id, workspace_id=workspace_id, chunk_size=chunk_size)
        return self._task(project_id, self._api.create_task(project_id, body, idempotency_key))

    def get_task(self, project_id: str, task_id: str, *, return_result: bool = True) -> Task:
        """One task, with its progress, its ``result`` when completed (unless ``return_result=False``) and its
        ``error_msg`` when failed.

        Raises:
            InvalidResourceId: ``task_id`` breaks the id rules (raised before sending anything).
            NotFound: no such task in the project (or a project you do not belong to).
        """
        return self._task(project_id, self._api.get_task(project_id, task_id, return_result))

    def list_tasks(self, project_id: str, *, page_size: int = MAX_PAGE_SIZE, order: Order = "desc",
                   sort_by: SortBy = "create_time", status: int | None = None,
                   task_type: TaskTypeName | None = None, task_name: str | None = None, source: str | None = None,
                   source_type: SourceType | None = None, version_id: str | Sequence[str] | None = None,
                   workspace_id: str = "0", query_current: bool = False,
                   return_result: bool = True) -> Iterator[Task]:
        """Every task of the project that matches the filters, fetching one page at a time as you iterate.

        ::

            for task in rp.list_tasks("demo", status=TaskStatus.COMPLETED, order="asc"):
                print(task.uid, task.name)

        The API's ``offset`` is a page index and its ``limit`` (here ``page_size``, 1-100) the page size; this
        walks the pages for you, stopping after the last one. The listing is not a snapshot: with the default
        newest-first order a task created meanwhile shifts the later pages, so a task already yielded is not
        yielded again (and one created meanwhile may be missed); ``order="asc"`` walks a growing listing stably.

        Args:
            project_id: the project to list (a viewer may).
            page_size: tasks per request, 1 to 100.
            order: ``"asc"`` or ``"desc"`` (default) on ``sort_by``.
            sort_by: ``"create_time"`` (default), ``"name"`` or ``"duration_seconds"``.
            status: only tasks in this status (0-4; see :class:`~rayproc_client.TaskStatus`).
            task_type: only tasks of this template.
            task_name: only tasks whose name contains this (case-insensitive).
            source: only tasks over this source.
            source_type: only tasks with this source type.
            version_id: only tasks over these dataset versions (one id or several).
            workspace_id: the ModelArts workspace (``"0"``).
            query_current: only the newest task of each type per source and dataset version.
            return_result: include each completed task's ``result`` (default); ``False`` makes pages lighter.

        Raises:
            ValueError: ``page_size`` outside 1-100 (at once, before iterating).
            InvalidRequest: a filter the service refuses (when the first page is fetched).
            NotFound: no such project, or one you do not belong to (when the first page is fetched).
        """
        query = list_query(page_size=page_size, order=order, sort_by=sort_by, status=status, task_type=task_type,
                           task_name=task_name, source=source, source_type=source_type,
                           version_id=version_ids(version_id), workspace_id=workspace_id,
                           query_current=query_current, return_result=return_result)
        return self._walk(project_id, query)

    def _walk(self, project_id: str, query: ListQuery) -> Iterator[Task]:
        pager = Pager(query)
        while not pager.done:
            for info in pager.accept(self._run(self._api.list_page(project_id, pager.query))):
                yield Task(self, project_id, info)

    def delete_task(self, project_id: str, task_id: str) -> None:
        """Delete a finished task's record (its output files stay where they are).

        Retried after a 503 or a connection error: should the first attempt have deleted the task with its answer
        lost, the retry answers :class:`~rayproc_client.errors.NotFound`.

        Raises:
            InvalidResourceId: ``task_id`` breaks the id rules (raised before sending anything).
            Conflict: the task is still initialized or running; stop it first.
            NotFound: no such task.
        """
        self._run(self._api.delete_task(project_id, task_id))

    def stop_job(self, project_id: str, pk: str) -> Task:
        """Stop a task. The chunks in flight finish and are kept; the task then reaches status 4 (stopped), which
        :meth:`Task.wait_till_done` waits for (it returns on a stopped task).

        The id is checked first, by the service's own rules and with its messages, and a bad one raises
        :class:`~rayproc_client.errors.InvalidResourceId` (``status_code`` 400) without sending anything: empty
        (``task ID cannot be empty``), characters other than letters, digits, ``-`` and ``_``
        (``Invalid task ID format``), over 100 characters (``task ID too long``).

        Retried after a 503 (the service changed nothing) or a connection error: stopping twice leaves the task as
        stopping once does. Should the first attempt have stopped an already-finishing task with its answer lost,
        the retry answers :class:`~rayproc_client.errors.InvalidState`.

        Raises:
            InvalidResourceId: see above.
            InvalidState: the task is already completed, failed or stopped (the message names its state).
            NotFound: no such task.
            RayUnavailable: the Ray cluster stayed unreachable through every retry; nothing changed.
        """
        return self._task(project_id, self._api.stop_task(project_id, pk))

    def resume_job(self, project_id: str, pk: str) -> Task:
        """Resume a stopped or failed task as a new Ray job that processes only the items no earlier run
        committed.

        The id is checked exactly as :meth:`stop_job` checks it, before anything is sent. Never retried: a resume
        starts a new Ray job, like a create (the service would refuse a second one, but the caller should see the
        first answer, not a confusing ``invalid_state``).

        Raises:
            InvalidResourceId: the id breaks the id rules (nothing is sent).
            InvalidState: the task is neither stopped nor failed.
            NotFound: no such task.
            RayUnavailable: the Ray cluster is unreachable; nothing changed, and calling again is safe.
        """
        return self._task(project_id, self._api.resume_task(project_id, pk))

    def task_report(self, project_id: str, task_id: str) -> str:
        """A completed analysis task's report, as an HTML page: a chart per feature, issue counts, the worst
        examples.

        Raises:
            InvalidResourceId: ``task_id`` breaks the id rules (raised before sending anything).
            InvalidState: the task is not completed, or not a ``sys_data_analyse`` task.
            NotFound: no such task.
        """
        return self._run(self._api.task_report(project_id, task_id))

    def task_logs(self, project_id: str, task_id: str, *, run: int | None = None) -> str:
        """The job runner's log of one run of the task, from Ray, as text.

        Args:
            run: the run number, from 1 (the first run; each resume adds one); by default the current run.

        Raises:
            InvalidResourceId: ``task_id`` breaks the id rules (raised before sending anything).
            NotFound: no such task or run, or Ray no longer has the run's logs.
            RayUnavailable: the Ray cluster stayed unreachable through every retry.
        """
        return self._run(self._api.task_logs(project_id, task_id, run))

    def follow_task_logs(self, project_id: str, task_id: str, *, run: int | None = None) -> Iterator[str]:
        """The run's log as it grows, text chunk by text chunk, until the run ends.

        A queued run is waited for. The service also ends a stream after its own bounds (an hour, 16 MiB by
        default) with a last line that says so. Not retried: a repeat would send the log from its start again.

        Raises:
            InvalidResourceId: ``task_id`` breaks the id rules (raised before sending anything).
            NotFound: no such task or run.
            ConnectError: the connection failed or broke off.
        """
        args = self._api.send_args(self._api.task_logs_follow(project_id, task_id, run))
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)  # a quiet log is not a dead service
        try:
            with self._http.stream(**args, timeout=timeout) as reply:
                if not reply.is_success:
                    reply.read()
                    raise translate(reply)
                yield from reply.iter_text()
        except httpx.TransportError as exc:
            raise translate(exc) from exc

    def templates(self, project_id: str) -> list[TemplateInfo]:
        """The five templates, each with its operators, their descriptions and their params as JSON Schema."""
        return self._run(self._api.templates(project_id))

    def template_items(self, project_id: str) -> list[TemplateItem]:
        """ModelArts' short template list: id and English and Chinese labels."""
        return self._run(self._api.template_items(project_id))

    # ----- accounts and the cluster -------------------------------------------------------------

    def whoami(self) -> Whoami:
        """The caller (name, whether an admin) and the projects they can see, with their role in each."""
        return self._run(self._api.whoami())

    def projects(self) -> list[ProjectInfo]:
        """The projects the caller can see (every project, for an admin)."""
        return self._run(self._api.projects())

    def users(self) -> list[UserInfo]:
        """Every user (admins only; others get :class:`~rayproc_client.errors.Forbidden`)."""
        return self._run(self._api.users())

    def create_user(self, name: str, *, is_admin: bool = False) -> UserInfo:
        """Create a user, with no token yet (admins only). Not retried.

        Raises:
            InvalidParameter: the name is taken.
            Forbidden: the caller is not an admin.
        """
        return self._run(self._api.create_user(name, is_admin))

    def create_token(self, user: str, *, name: str = "") -> IssuedToken:
        """Issue a token for ``user`` (admins only). The token is in this answer only: store it now. Not retried.

        Raises:
            NotFound: no such user.
            Forbidden: the caller is not an admin.
        """
        return self._run(self._api.create_token(user, name))

    def tokens(self) -> list[TokenInfo]:
        """Every token's id, owner and state, never the token itself (admins only)."""
        return self._run(self._api.tokens())

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token at once (admins only).

        Raises:
            NotFound: no active token with this id.
            Forbidden: the caller is not an admin.
        """
        self._run(self._api.revoke_token(token_id))

    def create_project(self, project_id: str, *, name: str = "") -> ProjectInfo:
        """Create a project (admins only). Not retried.

        Raises:
            Conflict: the project exists.
            InvalidRequest: the id breaks the id rules (letters, digits, ``-``, ``_``; 1-100 characters).
            Forbidden: the caller is not an admin.
        """
        return self._run(self._api.create_project(project_id, name))

    def set_member(self, project_id: str, user: str, role: Role) -> Membership:
        """Give ``user`` the role ``"viewer"`` (reads) or ``"member"`` (also creates, stops, resumes and deletes
        tasks) in a project, or change it (admins only). Setting a role twice is harmless, so this is retried.

        Raises:
            NotFound: no such project or user.
            Forbidden: the caller is not an admin.
        """
        return self._run(self._api.set_member(project_id, user, role))

    def remove_member(self, project_id: str, user: str) -> None:
        """Take ``user`` out of a project (admins only).

        Raises:
            NotFound: no such user, or not a member.
            Forbidden: the caller is not an admin.
        """
        self._run(self._api.remove_member(project_id, user))

    def cluster(self) -> ClusterInfo:
        """The Ray cluster's nodes and resources (admins only).

        Raises:
            RayUnavailable: the service cannot read the cluster's state.
            Forbidden: the caller is not an admin.
        """
        return self._run(self._api.cluster())

    def health(self) -> Health:
        """Whether the service is up and whether its Ray Jobs API answers (needs no token)."""
        return self._run(self._api.health())

    def import_items(self, project_id: str, items: list[dict[str, Any]], *, dataset: str = "default",
                     return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """Import items (Label Studio's asynchronous import); returns the import id at once. Poll
        :meth:`get_import` (or :meth:`wait_import`) for counts, failures and ``task_ids``.

        Like :meth:`create_task`, an import carries an ``Idempotency-Key`` (``idempotency_key``, or a fresh one)
        and is retried after a 503 or a connection error without importing twice; the same holds for
        :meth:`import_file` and :meth:`import_folder`."""
        return self._run(self._api.import_items(project_id, items, dataset, return_task_ids, idempotency_key))

    def import_file(self, project_id: str, path: PathLike, *, dataset: str = "default",
                    return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """Upload a ``.json``, ``.jsonl`` or ``.csv`` file of items to import; returns the import id."""
        path = Path(path)
        return self._run(self._api.import_file(project_id, path.name, path.read_bytes(), dataset, return_task_ids,
                                               idempotency_key))

    def import_folder(self, project_id: str, folder: PathLike, *, recursive: bool = True,
                      metadata_sheet: PathLike | None = None, dataset: str = "default",
                      return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """Import the images of a folder on the service's machine (with an optional CSV of metadata)."""
        sheet = os.fspath(metadata_sheet) if metadata_sheet is not None else None
        return self._run(self._api.import_folder(project_id, os.fspath(folder), recursive, sheet, dataset,
                                                 return_task_ids, idempotency_key))

    def get_import(self, project_id: str, import_id: int) -> dict[str, Any]:
        """An import's status (``created``, ``in_progress``, ``completed``, ``failed``), counts and failures."""
        return self._run(self._api.get_import(project_id, import_id))


class AsyncClient:
    """An ``asyncio`` client for rayproc's HTTP API: :class:`Client`'s methods, awaitable.

    ::

        async with AsyncClient() as rp:
            task = await rp.create_task("demo", name="first-look", source="/data/samples")
            await task.wait_till_done()
            async for t in rp.list_tasks("demo", status=2):
                print(t.uid)

    Arguments as for :class:`Client`, except that ``http`` is an ``httpx.AsyncClient`` and ``sleep`` a coroutine
    function (``asyncio.sleep``). Retries, errors and answers are :class:`Client`'s (an
    :class:`~rayproc_client.AsyncTask` for a :class:`~rayproc_client.Task`).
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 http: httpx.AsyncClient | None = None, retries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        url, token = resolve_connection(base_url, token, http.base_url if http is not None else None)
        self._api = Api(url, token, RetryPolicy(retries, backoff))
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self.sleep = sleep
        self.clock = clock

    @property
    def base_url(self) -> str:
        return self._api.base_url

    def __repr__(self) -> str:
        return f"<AsyncClient {self.base_url}>"

    async def aclose(self) -> None:
        """Close the ``httpx.AsyncClient`` this client created (an injected one stays open)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def _run(self, op: Op[T]) -> T:
        """:meth:`Client._run` with awaits: the same steps, carried out asynchronously."""
        reply: httpx.Response | None = None
        failure: httpx.TransportError | None = None
        while True:
            try:
                step = op.throw(failure) if failure is not None else op.send(reply)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            reply, failure = None, None
            if isinstance(step, Pause):
                await self.sleep(step.seconds)
                continue
            try:
                reply = await self._http.request(**self._api.send_args(step))
            except httpx.TransportError as exc:
                failure = exc

    async def _task(self, project_id: str, op: Op[TaskInfo]) -> AsyncTask:
        return AsyncTask(self, project_id, await self._run(op))

    # ----- processor tasks (see Client for the full documentation) ----------------------------

    async def create_task(self, project_id: str, *, name: str, source: PathLike,
                          template: TaskTypeName | str = "sys_data_analyse",
                          operator_params: OperatorParams | None = None, description: str = "",
                          source_type: SourceType = "OBS", work_path: PathLike | None = None,
                          version_id: str | None = None, workspace_id: str = "0",
                          chunk_size: int | None = None, idempotency_key: str | None = None) -> AsyncTask:
        """:meth:`Client.create_task`; retried with its one ``Idempotency-Key``."""
        body = create_body(name=name, source=source, template=template, operator_params=operator_params,
                           description=description, source_type=source_type, work_path=work_path,
                           version_id=version_id, workspace_id=workspace_id, chunk_size=chunk_size)
        return await self._task(project_id, self._api.create_task(project_id, body, idempotency_key))

    async def get_task(self, project_id: str, task_id: str, *, return_result: bool = True) -> AsyncTask:
        """:meth:`Client.get_task`."""
        return await self._task(project_id, self._api.get_task(project_id, task_id, return_result))

    def list_tasks(self, project_id: str, *, page_size: int = MAX_PAGE_SIZE, order: Order = "desc",
                   sort_by: SortBy = "create_time", status: int | None = None,
                   task_type: TaskTypeName | None = None, task_name: str | None = None, source: str | None = None,
                   source_type: SourceType | None = None, version_id: str | Sequence[str] | None = None,
                   workspace_id: str = "0", query_current: bool = False,
                   return_result: bool = True) -> AsyncIterator[AsyncTask]:
        """:meth:`Client.list_tasks`, as an async iterator (``async for``; the call itself is not awaited)."""
        query = list_query(page_size=page_size, order=order, sort_by=sort_by, status=status, task_type=task_type,
                           task_name=task_name, source=source, source_type=source_type,
                           version_id=version_ids(version_id), workspace_id=workspace_id,
                           query_current=query_current, return_result=return_result)
        return self._walk(project_id, query)

    async def _walk(self, project_id: str, query: ListQuery) -> AsyncIterator[AsyncTask]:
        pager = Pager(query)
        while not pager.done:
            for info in pager.accept(await self._run(self._api.list_page(project_id, pager.query))):
                yield AsyncTask(self, project_id, info)

    async def delete_task(self, project_id: str, task_id: str) -> None:
        """:meth:`Client.delete_task`."""
        await self._run(self._api.delete_task(project_id, task_id))

    async def stop_job(self, project_id: str, pk: str) -> AsyncTask:
        """:meth:`Client.stop_job`: the id is checked before anything is sent; retried."""
        return await self._task(project_id, self._api.stop_task(project_id, pk))

    async def resume_job(self, project_id: str, pk: str) -> AsyncTask:
        """:meth:`Client.resume_job`: the id is checked before anything is sent; never retried."""
        return await self._task(project_id, self._api.resume_task(project_id, pk))

    async def task_report(self, project_id: str, task_id: str) -> str:
        """:meth:`Client.task_report`."""
        return await self._run(self._api.task_report(project_id, task_id))

    async def task_logs(self, project_id: str, task_id: str, *, run: int | None = None) -> str:
        """:meth:`Client.task_logs`."""
        return await self._run(self._api.task_logs(project_id, task_id, run))

    async def follow_task_logs(self, project_id: str, task_id: str, *,
                               run: int | None = None) -> AsyncIterator[str]:
        """:meth:`Client.follow_task_logs`, as an async iterator."""
        args = self._api.send_args(self._api.task_logs_follow(project_id, task_id, run))
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)  # a quiet log is not a dead service
        try:
            async with self._http.stream(**args, timeout=timeout) as reply:
                if not reply.is_success:
                    await reply.aread()
                    raise translate(reply)
                async for text in reply.aiter_text():
                    yield text
        except httpx.TransportError as exc:
            raise translate(exc) from exc

    async def templates(self, project_id: str) -> list[TemplateInfo]:
        """:meth:`Client.templates`."""
        return await self._run(self._api.templates(project_id))

    async def template_items(self, project_id: str) -> list[TemplateItem]:
        """:meth:`Client.template_items`."""
        return await self._run(self._api.template_items(project_id))

    # ----- accounts and the cluster ------------------------------------------------------------

    async def whoami(self) -> Whoami:
        """:meth:`Client.whoami`."""
        return await self._run(self._api.whoami())

    async def projects(self) -> list[ProjectInfo]:
        """:meth:`Client.projects`."""
        return await self._run(self._api.projects())

    async def users(self) -> list[UserInfo]:
        """:meth:`Client.users`."""
        return await self._run(self._api.users())

    async def create_user(self, name: str, *, is_admin: bool = False) -> UserInfo:
        """:meth:`Client.create_user`."""
        return await self._run(self._api.create_user(name, is_admin))

    async def create_token(self, user: str, *, name: str = "") -> IssuedToken:
        """:meth:`Client.create_token`."""
        return await self._run(self._api.create_token(user, name))

    async def tokens(self) -> list[TokenInfo]:
        """:meth:`Client.tokens`."""
        return await self._run(self._api.tokens())

    async def revoke_token(self, token_id: str) -> None:
        """:meth:`Client.revoke_token`."""
        await self._run(self._api.revoke_token(token_id))

    async def create_project(self, project_id: str, *, name: str = "") -> ProjectInfo:
        """:meth:`Client.create_project`."""
        return await self._run(self._api.create_project(project_id, name))

    async def set_member(self, project_id: str, user: str, role: Role) -> Membership:
        """:meth:`Client.set_member`."""
        return await self._run(self._api.set_member(project_id, user, role))

    async def remove_member(self, project_id: str, user: str) -> None:
        """:meth:`Client.remove_member`."""
        await self._run(self._api.remove_member(project_id, user))

    async def cluster(self) -> ClusterInfo:
        """:meth:`Client.cluster`."""
        return await self._run(self._api.cluster())

    async def health(self) -> Health:
        """:meth:`Client.health`."""
        return await self._run(self._api.health())

    async def import_items(self, project_id: str, items: list[dict[str, Any]], *, dataset: str = "default",
                           return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """:meth:`Client.import_items`."""
        return await self._run(self._api.import_items(project_id, items, dataset, return_task_ids, idempotency_key))

    async def import_file(self, project_id: str, path: PathLike, *, dataset: str = "default",
                          return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """:meth:`Client.import_file`."""
        path = Path(path)
        return await self._run(self._api.import_file(project_id, path.name, path.read_bytes(), dataset,
                                                     return_task_ids, idempotency_key))

    async def import_folder(self, project_id: str, folder: PathLike, *, recursive: bool = True,
                            metadata_sheet: PathLike | None = None, dataset: str = "default",
                            return_task_ids: bool = False, idempotency_key: str | None = None) -> int:
        """:meth:`Client.import_folder`."""
        sheet = os.fspath(metadata_sheet) if metadata_sheet is not None else None
        return await self._run(self._api.import_folder(project_id, os.fspath(folder), recursive, sheet, dataset,
                                                       return_task_ids, idempotency_key))

    async def get_import(self, project_id: str, import_id: int) -> dict[str, Any]:
        """:meth:`Client.get_import`."""
        return await self._run(self._api.get_import(project_id, import_id))
