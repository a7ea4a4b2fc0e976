"""Executing one run of a task: items, chunks on the cluster, commits, outputs.

See ``jobs.runner`` for the life of a run; this module is imported only once the
run has claimed its task, so claiming stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.catalog import OperatorSpec, build_pipeline, load_plugins
from jobs.signals import install_stop_handler
from jobs.sources import (
    STATE_DIR,
    PathNotAllowed,
    item_within,
    list_items,
    resolve_within,
)
from jobs.status import ErrorType, TaskFailure, TaskStatus
from jobs.store import Store, TaskRecord
from operators.base import Item, OperatorError
from operators.pipeline import ERROR_CODE, ERROR_MSG, FAILED, ITEM, OK, STATUS, Pipeline
from operators.registry import default_registry

log = logging.getLogger("rayproc.runner")

FEATURES_FILE = "features.jsonl"
FAILURES_FILE = "failures.jsonl"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class RunContext:
    store: Store
    task: TaskRecord
    run_id: str
    allowed_roots: tuple[str, ...]
    plugins: tuple[str, ...]
    stop_event: threading.Event


# ----- per-chunk work (runs on any node) ---------------------------------------------------


def process_chunk(plugins: Sequence[str], specs: Sequence[dict], root: str, items: Sequence[str | dict],
                  allowed_roots: Sequence[str], output_dir: str | None = None) -> list[dict]:
    """Process one chunk; items whose real path escapes the allowed roots fail individually."""
    registry = default_registry()
    load_plugins(plugins, registry)
    pipeline = build_pipeline(specs, registry)
    root_path = Path(root)
    keys = [Item.of(raw).key for raw in items]
    unlisted = {raw["key"]: raw["error"] for raw in items if isinstance(raw, dict) and "error" in raw}
    inside = [raw for raw, key in zip(items, keys, strict=True)
              if key not in unlisted and item_within(root_path, key, allowed_roots)]
    by_item = {r[ITEM]: r for r in pipeline.process_items(root, inside, output_dir)} if inside else {}
    out = []
    for key in keys:
        if key in by_item:
            out.append(by_item[key])
        elif key in unlisted:
            out.append({ITEM: key, STATUS: FAILED, ERROR_CODE: "bad_manifest_line", ERROR_MSG: unlisted[key]})
        else:
            out.append({ITEM: key, STATUS: FAILED, ERROR_CODE: "path_not_allowed",
                        ERROR_MSG: "the file resolves outside the allowed roots"})
    return out


def _process_chunk_on_node(*args) -> tuple[str, list[dict]]:
    """``process_chunk`` as a Ray task, reporting which node ran it."""
    import ray

    return ray.get_runtime_context().get_node_id(), process_chunk(*args)


# ----- state on disk ------------------------------------------------------------------------


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _dump_records(records: Sequence[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)


class RunState:
    """The manifest and committed part files under ``<output>/.rayproc``."""

    def __init__(self, output_dir: Path, chunk_size: int) -> None:
        self.dir = output_dir / STATE_DIR
        self.parts = self.dir / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size

    def load_or_create_manifest(self, list_fn) -> tuple[str, list[str], int]:
        path = self.dir / "manifest.json"
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            root, items = list_fn()
            data = {"root": str(root), "items": items, "chunk_size": self.chunk_size}
            _write_atomic(path, json.dumps(data))
        return data["root"], data["items"], int(data["chunk_size"])

    def part_path(self, index: int) -> Path:
        return self.parts / f"{index:06d}.jsonl"

    def committed(self) -> set[int]:
        return {int(p.stem) for p in self.parts.glob("*.jsonl") if p.stem.isdigit()}

    def commit(self, index: int, records: Sequence[dict]) -> None:
        _write_atomic(self.part_path(index), _dump_records(records))

    def record_placement(self, run_id: str, placement: dict[int, str]) -> None:
        """Which node committed each chunk in this run (for operators of the cluster, and tests)."""
        runs = self.dir / "runs"
        runs.mkdir(exist_ok=True)
        _write_atomic(runs / f"{run_id}.json", json.dumps({str(k): v for k, v in sorted(placement.items())}))

    def read(self, index: int) -> list[dict]:
        with open(self.part_path(index), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _counts(records: Sequence[dict]) -> tuple[int, int]:
    ok = sum(1 for r in records if r.get(STATUS) == OK)
    return ok, len(records) - ok


# ----- one run ------------------------------------------------------------------------------


def execute(ctx: RunContext) -> TaskStatus:
    task = ctx.task
    registry = default_registry()
    load_plugins(ctx.plugins, registry)
    specs = [OperatorSpec(o["id"], o.get("params") or {}) for o in task.template.get("operator_params", [])]
    try:
        pipeline = build_pipeline(specs, registry)
    except Exception as exc:
        raise TaskFailure(ErrorType.OPERATOR_ERROR, f"invalid operator configuration: {exc}") from exc

    try:
        source = resolve_within(task.input_root, ctx.allowed_roots)
        output_dir = resolve_within(task.output_dir, ctx.allowed_roots, must_exist=False)
    except PathNotAllowed as exc:
        raise TaskFailure(ErrorType.PATH_NOT_ALLOWED, str(exc)) from exc
    except FileNotFoundError as exc:
        raise TaskFailure(ErrorType.INPUT_NOT_FOUND, str(exc)) from exc
    try:
        state = RunState(output_dir, int(task.execution.get("chunk_size", 32)))
        root, items, chunk_size = state.load_or_create_manifest(lambda: list_items(source))
    except OSError as exc:
        raise TaskFailure(ErrorType.OUTPUT_ERROR, f"cannot write to the output path: {exc}") from exc
    if not items:
        raise TaskFailure(ErrorType.NO_ITEMS, f"no image files (or manifest lines) found in {task.input_root!r}")

    chunks = _chunks(items, chunk_size)
    done = state.committed()
    processed = failed = 0
    for index in sorted(done):
        ok, bad = _counts(state.read(index))
        processed, failed = processed + ok, failed + bad
    total = len(items)
    tracker = _Progress(ctx, total, processed, failed)
    tracker.flush(force=True)
    todo = [i for i in range(len(chunks)) if i not in done]
    log.info("task %s run %s: %d items in %d chunks, %d already done", task.task_id, ctx.run_id, total,
             len(chunks), len(done))

    if todo:
        if len(chunks) == 1:
            # One chunk: no parallelism to gain, and connecting to the cluster costs more than the work.
            records = process_chunk(ctx.plugins, specs, root, chunks[0], ctx.allowed_roots, str(output_dir))
            state.commit(0, records)
            tracker.add(records)
        else:
            _run_on_cluster(ctx, state, chunks, todo, specs, root, tracker, str(output_dir))
    tracker.flush(force=True)

    if len(state.committed()) < len(chunks):
        ctx.store.finish_run(task.task_id, ctx.run_id, TaskStatus.STOPPED,
                             message=f"stopped with {len(state.committed())} of {len(chunks)} chunks committed")
        return TaskStatus.STOPPED

    result = _assemble(state, len(chunks), pipeline, output_dir, root)
    ctx.store.finish_run(task.task_id, ctx.run_id, TaskStatus.COMPLETED, result=result)
    return TaskStatus.COMPLETED


class _Progress:
    """Progress counters, written to the database at most a few times a second."""

    def __init__(self, ctx: RunContext, total: int, processed: int, failed: int) -> None:
        self.ctx, self.total, self.processed, self.failed = ctx, total, processed, failed
        self.computed = 0
        self._last = 0.0

    def add(self, records: Sequence[dict]) -> None:
        ok, bad = _counts(records)
        self.processed += ok
        self.failed += bad
        self.computed += len(records)
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        stop = self.ctx.store.record_progress(
            self.ctx.task.task_id, self.ctx.run_id, total=self.total, processed=self.processed,
            failed=self.failed, computed_in_run=self.computed)
        if stop:
            self.ctx.stop_event.set()


def _run_on_cluster(ctx: RunContext, state: RunState, chunks: list[list], todo: list[int],
                    specs: Sequence[OperatorSpec], root: str, tracker: _Progress, output_dir: str) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING, log_to_driver=True)
    # ray.init installs its own SIGTERM handler (exit at once); ours lets chunks in flight finish.
    install_stop_handler(ctx.stop_event)
    # Retries cover worker and node loss; a chunk is idempotent (it only returns records).
    remote = ray.remote(num_cpus=1, max_retries=3)(_process_chunk_on_node)
    spec_json = [s.to_json() for s in specs]
    max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending = iter(todo)
    in_flight: dict = {}

    def submit_more() -> None:
        while len(in_flight) < max_in_flight and not ctx.stop_event.is_set():
            index = next(pending, None)
            if index is None:
                return
            ref = remote.remote(ctx.plugins, spec_json, root, chunks[index], ctx.allowed_roots, output_dir)
            in_flight[ref] = index

    placement: dict[int, str] = {}
    submit_more()
    try:
        _drain(in_flight, submit_more, state, tracker, placement)
    finally:
        state.record_placement(ctx.run_id, placement)


def _drain(in_flight: dict, submit_more, state: RunState, tracker: _Progress, placement: dict) -> None:
    import ray

    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
        for ref in ready:
            index = in_flight.pop(ref)
            try:
                node_id, records = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, OperatorError) else exc
                raise TaskFailure(ErrorType.OPERATOR_ERROR, str(cause).strip().splitlines()[-1]) from exc
            except ray.exceptions.RayError as exc:  # retries exhausted: worker or node lost every time
                raise TaskFailure(ErrorType.CLUSTER_ERROR,
                                  f"chunk {index} could not be processed on the cluster: {exc}") from exc
            state.commit(index, records)
            placement[index] = node_id
            tracker.add(records)
        if not ready:
            tracker.flush()
        submit_more()


def _assemble(state: RunState, n_chunks: int, pipeline: Pipeline, output_dir: Path, root: str) -> dict:
    records: list[dict] = []
    for index in range(n_chunks):
        records.extend(state.read(index))
    # Operators may add per-item fields (issues, decisions) to the records here.
    result, files = pipeline.finalize(records, root=root, output_dir=str(output_dir))
    ok = [r for r in records if r.get(STATUS) == OK]
    bad = [r for r in records if r.get(STATUS) == FAILED]
    try:
        _write_atomic(output_dir / FEATURES_FILE, _dump_records(ok))
        _write_atomic(output_dir / FAILURES_FILE, _dump_records(bad))
        for name, rows in files.items():
            _write_atomic(output_dir / name, _dump_records(rows))
        result["failed_items"] = [{ITEM: r[ITEM], ERROR_CODE: r[ERROR_CODE], ERROR_MSG: r[ERROR_MSG]}
                                  for r in bad[:100]]
        result["outputs"] = {"features": FEATURES_FILE, "failures": FAILURES_FILE, "result": RESULT_FILE,
                             **{name.rsplit(".", 1)[0]: name for name in files}}
        _write_atomic(output_dir / RESULT_FILE, json.dumps(result, sort_keys=True, indent=2))
    except OSError as exc:
        raise TaskFailure(ErrorType.OUTPUT_ERROR, f"cannot write outputs: {exc}") from exc
    return result
