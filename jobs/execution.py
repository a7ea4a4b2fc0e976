"""One run of a task, start to end: check paths, freeze the items, run the chunks, assemble.

See ``jobs.runner`` for the life of a run; this module is imported only once the
run has claimed its task, so claiming stays fast. The parts it puts together:

- :mod:`jobs.chunk`: one chunk's work (items in, records out);
- :mod:`jobs.scheduler`: which chunk runs where and when, on Ray or in-process;
- :mod:`jobs.run_state`: the manifest, committed chunks, progress and the stop mark;
- :mod:`jobs.assembly`: the outputs, from the committed chunks;
- :mod:`jobs.layout`: where each of those files lives.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from jobs.assembly import assemble
from jobs.catalog import OperatorSpec, build_pipeline, load_plugins
from jobs.chunk import ChunkJob, chunk_cpus
from jobs.layout import RunLayout
from jobs.run_state import Progress, RunState
from jobs.scheduler import RayExecutor, Scheduler, StartGate
from jobs.sources import PathNotAllowed, list_items, resolve_location
from jobs.storage import ObjectError
from jobs.status import ErrorType, TaskFailure, TaskStatus
from jobs.store import Store, TaskRecord
from operators.pipeline import Pipeline
from operators.registry import default_registry

log = logging.getLogger("rayproc.runner")


@dataclass(frozen=True)
class RunContext:
    store: Store
    task: TaskRecord
    run_id: str
    allowed_roots: tuple[str, ...]
    plugins: tuple[str, ...]
    stop_event: threading.Event
    #: The cluster to run chunks on; None joins the one Ray's job supervisor names.
    ray_address: str | None = None


def execute(ctx: RunContext) -> TaskStatus:
    """Run the task's remaining chunks; record and return COMPLETED, or STOPPED if a stop cut the run short."""
    task = ctx.task
    specs, pipeline = _pipeline(ctx)
    try:
        source = resolve_location(task.input_root, ctx.allowed_roots)
        output_dir = resolve_location(task.output_dir, ctx.allowed_roots, must_exist=False)
    except PathNotAllowed as exc:
        raise TaskFailure(ErrorType.PATH_NOT_ALLOWED, str(exc)) from exc
    except (FileNotFoundError, ObjectError) as exc:
        raise TaskFailure(ErrorType.INPUT_NOT_FOUND, str(exc)) from exc
    try:
        state = RunState(RunLayout(output_dir), int(task.execution.get("chunk_size", 32)))
        manifest = state.load_or_create_manifest(lambda: list_items(source))
    except ObjectError as exc:
        raise TaskFailure(ErrorType.INPUT_NOT_FOUND, f"cannot list {task.input_root!r}: {exc}") from exc
    except OSError as exc:
        raise TaskFailure(ErrorType.OUTPUT_ERROR, f"cannot write to the output path: {exc}") from exc
    if not manifest.items:
        raise TaskFailure(ErrorType.NO_ITEMS, f"no image files (or manifest lines) found in {task.input_root!r}")

    chunks = manifest.chunks()
    done = state.committed()
    processed, failed = state.committed_counts()
    progress = Progress(ctx.store, task.task_id, ctx.run_id, ctx.stop_event, total=len(manifest.items),
                        processed=processed, failed=failed)
    progress.flush(force=True)
    todo = [i for i in range(len(chunks)) if i not in done]
    log.info("task %s run %s: %d items in %d chunks, %d already done", task.task_id, ctx.run_id,
             len(manifest.items), len(chunks), len(done))

    job = ChunkJob(ctx.plugins, tuple(s.to_json() for s in specs), manifest.root, ctx.allowed_roots, output_dir)
    num_cpus = chunk_cpus(pipeline)

    def connect(gate: StartGate) -> RayExecutor:
        return RayExecutor(job, gate, num_cpus=num_cpus, stop_event=ctx.stop_event, address=ctx.ray_address)

    Scheduler(state, job, progress, run_id=ctx.run_id, stopping=ctx.stop_event.is_set, connect=connect).run(
        chunks, todo)
    progress.flush(force=True)

    committed = len(state.committed())
    if committed < len(chunks):
        ctx.store.finish_run(task.task_id, ctx.run_id, TaskStatus.STOPPED,
                             message=f"stopped with {committed} of {len(chunks)} chunks committed")
        return TaskStatus.STOPPED
    result = assemble(state, len(chunks), pipeline, manifest.root)
    ctx.store.finish_run(task.task_id, ctx.run_id, TaskStatus.COMPLETED, result=result)
    return TaskStatus.COMPLETED


def _pipeline(ctx: RunContext) -> tuple[list[OperatorSpec], Pipeline]:
    """The task's operators, checked again here: the runner trusts nothing it reads from the database."""
    registry = default_registry()
    load_plugins(ctx.plugins, registry)
    specs = [OperatorSpec(o["id"], o.get("params") or {}) for o in ctx.task.template.get("operator_params", [])]
    try:
        return specs, build_pipeline(specs, registry)
    except Exception as exc:
        raise TaskFailure(ErrorType.OPERATOR_ERROR, f"invalid operator configuration: {exc}") from exc
