"""The user's commands of ``rayproc`` (submit, list, show, stop, resume, logs, import, report), over HTTP.

Configured by ``--url``/``--token``/``--project`` or ``RAYPROC_URL``/``RAYPROC_TOKEN``/``RAYPROC_PROJECT``.
Human output by default, ``--json`` for scripts. Exit codes::

    0  done (the task completed, or the command succeeded)
    1  the task failed (status 3)
    2  usage error (bad option, bad params file)
    3  the task was stopped (status 4)
    4  gave up waiting (--timeout)
    5  the service refused the request (4xx) or is unavailable (5xx, unreachable)
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from rayproc_client.errors import ClientError, NotFound, TaskFailedError, TaskTimeoutError
from rayproc_contract.status import TaskStatus

EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_TIMEOUT, EXIT_SERVICE = 1, 2, 3, 4, 5
# An answered status this release does not know (a newer service's) is not taken for an end.
_ENDED = frozenset(s for s in TaskStatus if s.is_terminal())
POLL_SECONDS = 2.0


def _client(ctx: click.Context):
    from rayproc_client.client import Client

    return Client(ctx.obj.get("url"), ctx.obj.get("token"))


_PROJECT_SOURCES = {
    click.core.ParameterSource.DEFAULT: "the default; pick one with --project or RAYPROC_PROJECT",
    click.core.ParameterSource.ENVIRONMENT: "from RAYPROC_PROJECT",
    click.core.ParameterSource.COMMANDLINE: "from --project",
}


def _fail(exc: ClientError) -> None:
    click.echo(f"error: {exc}", err=True)
    if isinstance(exc, NotFound):  # most often a project the caller does not mean, or cannot see
        ctx = click.get_current_context(silent=True)
        project = ctx.params.get("project") if ctx else None
        if project is not None:
            source = _PROJECT_SOURCES.get(ctx.get_parameter_source("project"), "")
            click.echo(f"(project used: {project!r}, {source})", err=True)
    sys.exit(EXIT_SERVICE)


def _emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str) if as_json else human)


def _task_dict(task) -> dict:
    return task.info.model_dump(mode="json", exclude_none=True)


def _summary(task) -> str:
    d = _task_dict(task)
    line = (f"{d['task_id']}  {d['name']}  {task.status_name}  "
            f"{d.get('completion_percentage', 0):.1f}%  processed {d.get('processed_count', 0)}  "
            f"failed {d.get('failed_count', 0)}")
    if d.get("error_msg"):
        line += f"\n  error ({d.get('error_type')}): {d['error_msg']}"
    return line


common = [
    click.option("--url", envvar="RAYPROC_URL", default=None, help="Service URL (RAYPROC_URL)."),
    click.option("--token", envvar="RAYPROC_TOKEN", default=None, help="API token (RAYPROC_TOKEN)."),
    click.option("--project", "-p", envvar="RAYPROC_PROJECT", default="default", show_default=True,
                 help="Project id (RAYPROC_PROJECT)."),
    click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
]


def with_common(fn):
    for option in reversed(common):
        fn = option(fn)
    return click.pass_context(fn)


def _setup(ctx: click.Context, url: str | None, token: str | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj.update(url=url, token=token)


#: Without a terminal (a pipe, a log, CI), progress is one plain line per change of status and at most this often.
PLAIN_PROGRESS_SECONDS = 10.0


def _watch(task, as_json: bool, timeout: float) -> int:
    """Follow a task to its end, showing progress; return the exit code."""
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    with _progress(task.name, quiet=as_json) as show:
        while True:
            d = _task_dict(task)
            done = d.get("processed_count", 0) + d.get("failed_count", 0)
            show(status=task.status_name, done=done, total=d.get("total_count"), failed=d.get("failed_count", 0),
                 rate=done / max(time.monotonic() - start, 1e-9))
            if d["status"] in _ENDED:
                break
            if time.monotonic() > deadline:
                _emit(d, as_json, f"still {task.status_name} after {timeout:g} s; giving up waiting")
                return EXIT_TIMEOUT
            time.sleep(POLL_SECONDS)
            task.refresh()
    _emit(_task_dict(task), as_json, _summary(task))
    return {TaskStatus.COMPLETED: 0, TaskStatus.FAILED: EXIT_FAILED, TaskStatus.STOPPED: EXIT_STOPPED}[task.status]


@contextmanager
def _progress(name: str, *, quiet: bool):
    """A function ``show(status=, done=, total=, failed=, rate=)`` drawing progress: a live bar on a terminal,
    plain lines otherwise, nothing when ``quiet``."""
    if quiet:
        yield lambda **_: None
        return
    if not sys.stdout.isatty():
        last: dict = {"status": None, "at": 0.0}

        def line(*, status, done, total, failed, rate) -> None:
            now = time.monotonic()
            if status != last["status"] or now - last["at"] >= PLAIN_PROGRESS_SECONDS or (total and done >= total):
                click.echo(f"[{status}] {done}/{total if total is not None else '?'} done, {failed} failed, "
                           f"{rate:.1f} items/s  {name}")
                last.update(status=status, at=now)

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # Status and name as plain text, never Rich markup, which would swallow "[running]" (and a name is user data).
    columns = [TextColumn("[{task.fields[status]}]", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TextColumn("{task.fields[rate]:.1f} items/s"),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}", markup=False)]
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task(name, total=None, failed=0, rate=0.0, status="")

        def draw(*, status, done, total, failed, rate) -> None:
            progress.update(bar, total=total, completed=done, failed=failed, rate=rate, status=status)

        yield draw


@click.command()
@with_common
@click.argument("template")
@click.argument("source")
@click.option("--name", default=None, help="Task name (default: the template and the source's last part).")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file: operator_params list, or {operator id: params}.")
@click.option("--source-type", type=click.Choice(["OBS", "DATASET", "TASK"]), default="OBS", show_default=True)
@click.option("--version-id", default=None, help="Dataset version (with --source-type DATASET).")
@click.option("--chunk-size", type=click.IntRange(1, 10_000), default=None)
@click.option("--wait", is_flag=True, help="Follow the task with a progress bar until it ends.")
@click.option("--timeout", type=float, default=math.inf, help="With --wait: give up after this many seconds.")
def submit(ctx, url, token, project, as_json, template, source, name, params_file, source_type, version_id,
           chunk_size, wait, timeout) -> None:
    """Create a task of TEMPLATE (e.g. sys_data_analyse) over SOURCE (a server-side path, dataset or task id)."""
    _setup(ctx, url, token)
    params = None
    if params_file is not None:
        try:
            params = json.loads(params_file.read_text())
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"{params_file}: not JSON: {exc}") from None
    try:
        with _client(ctx) as client:
            task = client.create_task(project, name=name or f"{template}-{Path(source).name}"[:64],
                                      source=source, template=template, operator_params=params,
                                      source_type=source_type, version_id=version_id, chunk_size=chunk_size)
            if not wait:
                _emit(_task_dict(task), as_json, task.uid)
                return
            sys.exit(_watch(task, as_json, timeout))
    except ClientError as exc:
        _fail(exc)


@click.command("list")
@with_common
@click.option("--status", type=click.IntRange(min(TaskStatus), max(TaskStatus)), default=None)
@click.option("--type", "task_type", default=None, help="Template id.")
@click.option("--name", default=None, help="Substring of the task name.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
def list_(ctx, url, token, project, as_json, status, task_type, name, limit) -> None:
    """List tasks, newest first."""
    _setup(ctx, url, token)
    try:
        with _client(ctx) as client:
            tasks = []
            for task in client.list_tasks(project, status=status, task_type=task_type, task_name=name,
                                          return_result=False):
                tasks.append(task)
                if len(tasks) >= limit:
                    break
    except ClientError as exc:
        _fail(exc)
    _emit([_task_dict(t) for t in tasks], as_json, "\n".join(_summary(t) for t in tasks) or "(no tasks)")


@click.command()
@with_common
@click.argument("task_id")
def show(ctx, url, token, project, as_json, task_id) -> None:
    """One task: status, progress and (with --json) its whole record and result."""
    _setup(ctx, url, token)
    try:
        with _client(ctx) as client:
            task = client.get_task(project, task_id)
    except ClientError as exc:
        _fail(exc)
    _emit(_task_dict(task), as_json, _summary(task))


_LIFECYCLE_HELP = {"stop": "Stop a task (chunks in flight finish and are kept).",
                   "resume": "Resume a stopped or failed task; finished items are not redone."}


def _lifecycle(action: str):
    @click.command(action, help=_LIFECYCLE_HELP[action])
    @with_common
    @click.argument("task_id")
    def command(ctx, url, token, project, as_json, task_id) -> None:
        _setup(ctx, url, token)
        try:
            with _client(ctx) as client:
                task = getattr(client, f"{action}_job")(project, task_id)
        except ClientError as exc:
            _fail(exc)
        _emit(_task_dict(task), as_json, _summary(task))

    return command


stop = _lifecycle("stop")
resume = _lifecycle("resume")


@click.command()
@with_common
@click.argument("task_id")
@click.option("--follow", "-f", is_flag=True, help="Stream new lines as they come, until the run ends.")
def logs(ctx, url, token, project, as_json, task_id, follow) -> None:
    """The job runner's log of the task's current run."""
    _setup(ctx, url, token)
    try:
        with _client(ctx) as client:
            if not follow:
                click.echo(client.task_logs(project, task_id), nl=False)
                return
            for chunk in client.follow_task_logs(project, task_id):
                click.echo(chunk, nl=False)
    except ClientError as exc:
        _fail(exc)


@click.command("import")
@with_common
@click.argument("source")
@click.option("--dataset", default="default", show_default=True)
@click.option("--folder", is_flag=True, help="SOURCE is a folder on the service's machine (import its images).")
@click.option("--wait", is_flag=True, help="Wait until the import finishes.")
def import_(ctx, url, token, project, as_json, source, dataset, folder, wait) -> None:
    """Import items: a local .json/.jsonl/.csv file (uploaded), or with --folder a server-side folder."""
    _setup(ctx, url, token)
    try:
        with _client(ctx) as client:
            if folder:
                import_id = client.import_folder(project, source, dataset=dataset)
            else:
                path = Path(source)
                if not path.is_file():
                    raise click.UsageError(f"{source}: no such file")
                import_id = client.import_file(project, path, dataset=dataset)
            status = client.get_import(project, import_id)
            while wait and status["status"] not in ("completed", "failed"):
                time.sleep(POLL_SECONDS)
                status = client.get_import(project, import_id)
    except ClientError as exc:
        _fail(exc)
    human = (f"import {status['id']}: {status['status']}, {status['task_count']} items, "
             f"{status['failed_count']} failed")
    _emit(status, as_json, human)
    if status["status"] == "failed":
        sys.exit(EXIT_FAILED)


@click.command()
@with_common
@click.argument("task_id")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder to write report.html and the chart PNGs to.")
def report(ctx, url, token, project, as_json, task_id, out) -> None:
    """Write a completed task's report (report.html) and its charts (PNG) to a local folder.

    Every completed task has one, whatever its template. The page's links to the task's output files
    are rewritten to the service's URL (fetching them needs the same token)."""
    _setup(ctx, url, token)
    try:
        with _client(ctx) as client:
            page = client.task_report(project, task_id)
            files = f"{client.base_url.rstrip('/')}/v2/{project}/processor-tasks/{task_id}/files/"
    except ClientError as exc:
        _fail(exc)
    page = page.replace("href='files/", f"href='{html.escape(files, quote=True)}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").write_text(page, encoding="utf-8")
    charts = []
    for name, data in re.findall(r"<img class='chart' alt='([^']+) histogram' src='data:image/png;base64,([^']+)'",
                                 page):
        target = out / f"{name}.png"
        target.write_bytes(base64.b64decode(data))
        charts.append(str(target))
    _emit({"report": str(out / "report.html"), "charts": charts}, as_json,
          f"wrote {out / 'report.html'} and {len(charts)} charts")


COMMANDS = [submit, list_, show, stop, resume, logs, import_, report]
__all__ = ["COMMANDS", "TaskFailedError", "TaskTimeoutError"]
