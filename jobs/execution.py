"""Executing one run of a task: items, chunks on the cluster, commits, outputs.

See ``jobs.runner`` for the life of a run; this module is imported only once the
run has claimed its task, so claiming stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from jobs.catalog import OperatorSpec, build_pipeline, load_plugins
from jobs.signals import install_stop_handler
from jobs.sources import (
    STATE_DIR,
    PathNotAllowed,
    items_within,
    list_items,
    resolve_within,
)
from jobs.status import ErrorType, TaskFailure, TaskStatus
from jobs.store import Store, TaskRecord
from operators.base import Item, OperatorError, RecordTable
from operators.pipeline import ERROR_CODE, ERROR_MSG, FAILED, ITEM, OK, STATUS, Pipeline
from operators.registry import default_registry

log = logging.getLogger("rayproc.runner")

FEATURES_FILE = "features.jsonl"
FAILURES_FILE = "failures.jsonl"
RESULT_FILE = "result.json"
#: Failed items listed in ``result`` itself; every one is in the failures file.
MAX_FAILED_ITEMS_IN_RESULT = 100


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
    listed = [(raw, key) for raw, key in zip(items, keys, strict=True) if key not in unlisted]
    within = items_within(root_path, [key for _, key in listed], allowed_roots)
    inside = [raw for (raw, _), ok in zip(listed, within, strict=True) if ok]
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


def _process_chunk_on_node(gate: str, index: int, *args) -> tuple[str, list[dict] | None]:
    """``process_chunk`` as a Ray task, reporting which node ran it; ``None`` instead of records when the run
    was stopped before the chunk started (see :class:`StartGate`)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return node, process_chunk(*args) if StartGate(gate).enter(index) else None


class StartGate:
    """Lets a stop drop the chunks in flight that have not started, and only those.

    A chunk task first marks itself started, then looks for the stop mark; a stopping
    driver first sets the stop mark, then cancels the chunks not marked started. A chunk
    that started before the stop runs to the end and is committed as before; one that
    starts after it finds the mark and returns at once, so cancelling it loses nothing.
    Both sides only create files, so the order holds on any storage that shows a
    created file to later readers, as the shared work path must.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def enter(self, index: int) -> bool:
        try:
            with open(self.path / f"{index}.started", "x"):
                pass
        except FileExistsError:  # a retry after a worker was lost: it started before
            pass
        except OSError:  # the gate is out of reach from this node: work as if there were no gate
            return True
        return not (self.path / "stop").exists()

    def close(self) -> None:
        (self.path / "stop").touch()

    def started(self, index: int) -> bool:
        return (self.path / f"{index}.started").exists()


# ----- state on disk ------------------------------------------------------------------------


class _AtomicFile:
    """A file that appears whole at ``path`` or not at all: written to a temporary name,
    fsynced, then renamed over ``path``; on an error the temporary file is removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._fh: TextIO | None = None

    def __enter__(self) -> TextIO:
        self._fh = open(self._tmp, "w", encoding="utf-8")
        return self._fh

    def __exit__(self, exc_type, exc, tb) -> None:
        fh, self._fh = self._fh, None
        try:
            if exc_type is None:
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            fh.close()
            if exc_type is not None:
                self._tmp.unlink(missing_ok=True)
        if exc_type is None:
            os.replace(self._tmp, self.path)


def _write_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its lines, consumed as they come) atomically to ``path``."""
    with _AtomicFile(path) as fh:
        if isinstance(text, str):
            fh.write(text)
        else:
            fh.writelines(text)


def _dump_records(records: Iterable[dict]) -> Iterator[str]:
    """One JSON line per record, as every output file holds them."""
    for record in records:
        yield json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


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
        return list(self.iter_read(index))

    def iter_read(self, index: int) -> Iterator[dict]:
        """A committed part's records, one line at a time."""
        with open(self.part_path(index), encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def stream(self, n_chunks: int) -> Iterator[dict]:
        """Every record of chunks ``0 .. n_chunks - 1``, in item order."""
        for index in range(n_chunks):
            yield from self.iter_read(index)


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


#: How long the driver may process chunks itself while the cluster's workers start.
WARMUP_SECONDS = 10.0


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
    gate = StartGate(state.dir / "gates" / ctx.run_id)
    gate.path.mkdir(parents=True, exist_ok=True)
    max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending = iter(todo)
    in_flight: dict = {}

    def submit_more() -> None:
        while len(in_flight) < max_in_flight and not ctx.stop_event.is_set():
            index = next(pending, None)
            if index is None:
                return
            ref = remote.remote(str(gate.path), index, ctx.plugins, spec_json, root, chunks[index],
                                ctx.allowed_roots, output_dir)
            in_flight[ref] = index

    def run_locally() -> bool:
        """One chunk in the driver: a new job's workers take a second or more to start and import
        their libraries, time the driver (already warm) would otherwise spend waiting."""
        index = next(pending, None) if not ctx.stop_event.is_set() else None
        if index is None:
            return False
        records = process_chunk(ctx.plugins, spec_json, root, chunks[index], ctx.allowed_roots, output_dir)
        state.commit(index, records)
        placement[index] = driver_node
        tracker.add(records)
        return True

    placement: dict[int, str] = {}
    driver_node = ray.get_runtime_context().get_node_id()
    submit_more()
    try:
        _drain(in_flight, submit_more, run_locally, ctx.stop_event.is_set, gate, state, tracker, placement)
    finally:
        state.record_placement(ctx.run_id, placement)
        shutil.rmtree(gate.path, ignore_errors=True)


def _drain(in_flight: dict, submit_more, run_locally, stopping, gate: StartGate, state: RunState,
           tracker: _Progress, placement: dict) -> None:
    import ray

    warm_until = time.monotonic() + WARMUP_SECONDS
    warming = True  # until the first chunk comes back from the cluster
    gate_closed = False
    while in_flight:
        if stopping() and not gate_closed:
            # Chunks not started yet (queued, or waiting for a new worker to boot) are dropped rather than
            # waited for; the started ones finish and are kept. A resume runs the dropped ones.
            gate.close()
            gate_closed = True
            for ref, index in list(in_flight.items()):
                if not gate.started(index):
                    ray.cancel(ref)
                    del in_flight[ref]
            continue
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0 if warming else 0.5)
        for ref in ready:
            warming = False
            index = in_flight.pop(ref)
            try:
                node_id, records = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, OperatorError) else exc
                raise TaskFailure(ErrorType.OPERATOR_ERROR, str(cause).strip().splitlines()[-1]) from exc
            except ray.exceptions.RayError as exc:  # retries exhausted: worker or node lost every time
                raise TaskFailure(ErrorType.CLUSTER_ERROR,
                                  f"chunk {index} could not be processed on the cluster: {exc}") from exc
            if records is None:  # it found the run stopped before it started
                continue
            state.commit(index, records)
            placement[index] = node_id
            tracker.add(records)
        if not ready:
            if warming and time.monotonic() < warm_until:
                try:
                    warming = run_locally()
                except OperatorError as exc:
                    raise TaskFailure(ErrorType.OPERATOR_ERROR, str(exc)) from exc
            tracker.flush()
        submit_more()


def _assemble(state: RunState, n_chunks: int, pipeline: Pipeline, output_dir: Path, root: str) -> dict:
    # Two passes over the part files keep the driver's memory flat: the first feeds the
    # columns finalize reads, the second writes each record merged with the fields
    # finalize set on it, so no list of every record is ever held.
    table = RecordTable(state.stream(n_chunks), STATUS, OK, root=root, output_dir=str(output_dir))
    result, files = pipeline.finalize(table)
    failed_items: list[dict] = []
    try:
        with _AtomicFile(output_dir / FEATURES_FILE) as features, _AtomicFile(output_dir / FAILURES_FILE) as failures:
            for record, added in zip(state.stream(n_chunks), table.iter_added(), strict=True):
                status = record.get(STATUS)
                if status == OK:
                    out = features
                elif status == FAILED:
                    out = failures
                    if len(failed_items) < MAX_FAILED_ITEMS_IN_RESULT:
                        failed_items.append({ITEM: record[ITEM], ERROR_CODE: record[ERROR_CODE],
                                             ERROR_MSG: record[ERROR_MSG]})
                else:
                    continue
                record.update(added)
                out.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        for name, rows in files.items():
            _write_atomic(output_dir / name, _dump_records(rows))
        result["failed_items"] = failed_items
        result["outputs"] = {"features": FEATURES_FILE, "failures": FAILURES_FILE, "result": RESULT_FILE,
                             **{name.rsplit(".", 1)[0]: name for name in files}}
        _write_atomic(output_dir / RESULT_FILE, json.dumps(result, sort_keys=True, indent=2))
    except OSError as exc:
        raise TaskFailure(ErrorType.OUTPUT_ERROR, f"cannot write outputs: {exc}") from exc
    return result
