"""One chunk of a run: items in, one record per item out. Runs on any node, or in the driver.

The unit is pure: it reads the items' files and, for operators that make them
(augmentation), writes per-item files under the output path; it returns records
and commits nothing. When the output path is a bucket prefix, those files are
written to a private folder and uploaded (each one whole object) before the
chunk returns, so they exist before its part is committed. Operators are built
once per worker (a small cache keyed on the plugins and operator specs), not
once per chunk: a Ray worker runs many chunks of the same run one after another.

An operator that cannot process a batch fails the task with ``operator_error``,
whichever path ran the chunk; :func:`chunk_failure` is the one place that says so.
A chunk whose items are not found because the source itself went away (its folder
is gone, or most of the chunk's files are) is not committed: it raises
:class:`SourceUnavailable`, the task fails with ``source_unavailable``, and a resume
once the source is back redoes that chunk like any other uncommitted one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cv2

from jobs import storage
from jobs.catalog import build_pipeline, load_plugins
from jobs.sources import item_location, items_within
from jobs.status import ErrorType, TaskFailure
from operators.base import Item, OperatorError
from operators.pipeline import ERROR_CODE, ERROR_MSG, FAILED, ITEM, STATUS, Pipeline
from operators.registry import default_registry

#: Error code of a manifest line that names no usable item (see ``jobs.sources``).
BAD_MANIFEST_LINE = "bad_manifest_line"
PATH_NOT_ALLOWED = "path_not_allowed"
#: Failures that say something about the item's entry, not whether its file is there.
_ENTRY_FAILURES = frozenset({BAD_MANIFEST_LINE, PATH_NOT_ALLOWED, "bad_annotation"})


class SourceUnavailable(Exception):
    """The chunk's items were not found because their source went away; the chunk must not be committed."""


class OutputUnavailable(Exception):
    """The files the chunk made could not be written to the output location; the chunk must not be committed."""


@dataclass(frozen=True)
class ChunkJob:
    """What every chunk of one run shares: the operators, where items are read and written, and the roots."""

    plugins: tuple[str, ...]
    specs: tuple[dict, ...]
    root: str
    allowed_roots: tuple[str, ...]
    output_dir: str | None = None


class _Pipelines(threading.local):
    """Pipelines built in this worker, by (plugins, specs). Per thread, because one pipeline's operators are
    not shared between threads; a Ray worker process runs its tasks on one thread, so there it is per process."""

    def __init__(self) -> None:
        self.built: dict[str, Pipeline] = {}


_PIPELINES = _Pipelines()
#: Distinct pipelines kept per worker; a worker serves one run's chunks at a time, so one is the usual case.
_MAX_PIPELINES = 4


def pipeline_for(plugins: Sequence[str], specs: Sequence[dict]) -> Pipeline:
    """The pipeline for ``specs``, built the first time this worker sees them."""
    key = json.dumps([list(plugins), list(specs)], sort_keys=True)
    built = _PIPELINES.built
    pipeline = built.get(key)
    if pipeline is None:
        registry = default_registry()
        load_plugins(plugins, registry)
        pipeline = build_pipeline(specs, registry)
        if len(built) >= _MAX_PIPELINES:
            built.pop(next(iter(built)))
        built[key] = pipeline
    return pipeline


# glibc's malloc: allocations above this size get pages of their own, and free memory at the top of the heap
# above the trim size goes back to the system. The defaults (128 KiB, raised as large blocks are freed)
# made a chunk's few-MiB arrays fault in fresh zeroed pages on every use: 25 page faults per image, several
# percent of the image's decode. Raised above a chunk's largest array (64 thumbnails, 3 MiB; a float plane
# of them, 4 MiB), the freed arrays are reused; at most the trim size is kept unused (the driver, which runs
# chunks too before its workers are up, assembles the outputs later in the same process).
_MMAP_THRESHOLD = 8 << 20
_TRIM_THRESHOLD = 16 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_PREPARED = {"threads": 0, "malloc": False}


def prepare_process(cpus: float) -> None:
    """Once per process (a Ray worker, or the driver when it runs chunks): OpenCV uses as many threads as
    the chunk task holds CPUs (by default it starts one per core of the machine, which on a shared node
    only makes its calls wait for each other), and glibc keeps freed arrays for reuse."""
    threads = max(1, int(cpus))
    if _PREPARED["threads"] != threads:
        cv2.setNumThreads(threads)
        _PREPARED["threads"] = threads
    if not _PREPARED["malloc"]:
        _PREPARED["malloc"] = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "mallopt"):
                libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
        except OSError:  # not glibc: its allocator is left as it is
            pass


def run_chunk(job: ChunkJob, items: Sequence[str | dict]) -> list[dict]:
    """Process one chunk; items whose real path escapes the allowed roots fail individually.

    Raises :class:`OperatorError` when an operator fails the batch (see :func:`chunk_failure`).
    """
    pipeline = pipeline_for(job.plugins, job.specs)
    prepare_process(chunk_cpus(pipeline))
    keys = [Item.of(raw).key for raw in items]
    unlisted = {raw["key"]: (raw.get("error_code", BAD_MANIFEST_LINE), raw["error"])
                for raw in items if isinstance(raw, dict) and "error" in raw}
    listed = [(raw, key) for raw, key in zip(items, keys, strict=True) if key not in unlisted]
    within = items_within(job.root, [key for _, key in listed], job.allowed_roots)
    inside = [raw for (raw, _), ok in zip(listed, within, strict=True) if ok]
    by_item = {}
    if inside:
        with _local_output(job.output_dir) as output_dir:
            by_item = _process(pipeline, replace(job, output_dir=output_dir), inside)
    out = []
    for key in keys:
        if key in by_item:
            out.append(by_item[key])
        elif key in unlisted:
            code, message = unlisted[key]
            out.append({ITEM: key, STATUS: FAILED, ERROR_CODE: code, ERROR_MSG: message})
        else:
            out.append({ITEM: key, STATUS: FAILED, ERROR_CODE: PATH_NOT_ALLOWED,
                        ERROR_MSG: "the file resolves outside the allowed roots"})
    _check_source(job.root, out)
    return out


@contextmanager
def _local_output(output_dir: str | None) -> Iterator[str | None]:
    """A folder the operators can write per-item files in: the output path itself, or for a bucket a
    private folder whose files are uploaded under the output prefix once the block ends without error."""
    if output_dir is None or not storage.is_object_uri(output_dir):
        yield output_dir
        return
    with tempfile.TemporaryDirectory(prefix="rayproc-chunk-out-") as folder:
        yield folder
        try:
            storage.upload_tree(folder, storage.ObjectPath(output_dir))
        except OSError as exc:
            raise OutputUnavailable(f"cannot write the chunk's files to {output_dir!r}: {exc}") from exc


def _check_source(root: str, records: Sequence[dict]) -> None:
    """Raise :class:`SourceUnavailable` if the chunk's failures are the source's, not the items': files not
    found while the source folder itself is gone, or more than half the chunk's files not found. (A bucket
    source's missing objects are the items' own failures, ``object_not_found``: not judged here.)"""
    if storage.is_object_uri(root):
        return
    missing = [r for r in records if r.get(STATUS) == FAILED and r.get(ERROR_CODE) not in _ENTRY_FAILURES
               and not os.path.lexists(os.path.join(root, str(r[ITEM])))]
    if missing and (not os.path.isdir(root) or 2 * len(missing) > len(records)):
        raise SourceUnavailable(
            f"the source went away while the task ran ({len(missing)} of {len(records)} items of a chunk were "
            f"not found{'; its folder is gone' if not os.path.isdir(root) else ''}): restore {root!r} and "
            "resume the task to process the rest")


def _process(pipeline: Pipeline, job: ChunkJob, items: Sequence[str | dict]) -> dict[str, dict]:
    """Records by item key: files are read where they are, objects through :func:`_process_objects`."""
    remote = [storage.is_object_uri(item_location(job.root, Item.of(raw).key)) for raw in items]
    objects = [raw for raw, r in zip(items, remote, strict=True) if r]
    files = [raw for raw, r in zip(items, remote, strict=True) if not r]
    out = {r[ITEM]: r for r in pipeline.process_items(job.root, files, job.output_dir)} if files else {}
    if objects:
        out.update(_process_objects(pipeline, job, objects))
    return out


def _process_objects(pipeline: Pipeline, job: ChunkJob, items: Sequence[str | dict]) -> dict[str, dict]:
    """Objects are fetched for this chunk only (bounded concurrency, retries) into a private folder that
    is removed with the chunk, since the operators decode files; the dataset itself is never staged. An
    object that cannot be fetched fails its own item with the store's reason."""
    keys = [Item.of(raw).key for raw in items]
    uris = [storage.ObjectUri.parse(item_location(job.root, key)) for key in keys]
    fetched = storage.fetch_many(uris)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rayproc-chunk-") as folder:
        staged, original = [], {}
        for raw, key, uri, data in zip(items, keys, uris, fetched, strict=True):
            if isinstance(data, storage.ObjectError):
                out[key] = {ITEM: key, STATUS: FAILED, ERROR_CODE: data.code, ERROR_MSG: data.message}
                continue
            # Relative keys keep their names (augmented files are named after them); an absolute URI
            # is staged as bucket/key, as an absolute path's item is named after the path.
            name = f"{uri.bucket}/{uri.key}" if storage.is_object_uri(key) else key
            target = os.path.join(folder, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(data)
            original[name] = key
            staged.append({**raw, "key": name} if isinstance(raw, dict) else name)
        for record in pipeline.process_items(folder, staged, job.output_dir) if staged else []:
            key = original[record[ITEM]]
            out[key] = {**record, ITEM: key}
    return out


def process_chunk(plugins: Sequence[str], specs: Sequence[dict], root: str, items: Sequence[str | dict],
                  allowed_roots: Sequence[str], output_dir: str | None = None) -> list[dict]:
    """:func:`run_chunk` with the job given field by field (for tools and tests that run one chunk)."""
    return run_chunk(ChunkJob(tuple(plugins), tuple(specs), root, tuple(allowed_roots), output_dir), items)


#: What a chunk raises to fail the task (whichever path ran it); :func:`chunk_failure` says how.
CHUNK_FAILURES = (OperatorError, SourceUnavailable, OutputUnavailable)


def chunk_failure(exc: OperatorError | SourceUnavailable | OutputUnavailable) -> TaskFailure:
    """The task's failure when a chunk failed (an operator, its source gone, or its output out of reach): the
    same type and message on every path."""
    if isinstance(exc, SourceUnavailable):
        return TaskFailure(ErrorType.SOURCE_UNAVAILABLE, str(exc))
    if isinstance(exc, OutputUnavailable):
        return TaskFailure(ErrorType.OUTPUT_ERROR, str(exc))
    return TaskFailure(ErrorType.OPERATOR_ERROR, str(exc).strip().splitlines()[-1])


def chunk_cpus(pipeline: Pipeline) -> float:
    """CPUs a chunk task asks for: the most any of the pipeline's operators declares, and at least 1."""
    return max([1.0, *(float(op.num_cpus) for op in pipeline.operators)])
