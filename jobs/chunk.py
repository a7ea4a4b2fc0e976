"""One chunk of a run: items in, one record per item out. Runs on any node, or in the driver.

The unit is pure: it reads the items' files and, for operators that make them
(augmentation), writes per-item files under the output path; it returns records
and commits nothing. Operators are built once per worker (a small cache keyed on
the plugins and operator specs), not once per chunk: a Ray worker runs many
chunks of the same run one after another.

An operator that cannot process a batch fails the task with ``operator_error``,
whichever path ran the chunk; :func:`chunk_failure` is the one place that says so.
A chunk whose items are not found because the source itself went away (its folder
is gone, or most of the chunk's files are) is not committed: it raises
:class:`SourceUnavailable`, the task fails with ``source_unavailable``, and a resume
once the source is back redoes that chunk like any other uncommitted one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.catalog import build_pipeline, load_plugins
from jobs.sources import items_within
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


def run_chunk(job: ChunkJob, items: Sequence[str | dict]) -> list[dict]:
    """Process one chunk; items whose real path escapes the allowed roots fail individually.

    Raises :class:`OperatorError` when an operator fails the batch (see :func:`chunk_failure`).
    """
    pipeline = pipeline_for(job.plugins, job.specs)
    keys = [Item.of(raw).key for raw in items]
    unlisted = {raw["key"]: (raw.get("error_code", BAD_MANIFEST_LINE), raw["error"])
                for raw in items if isinstance(raw, dict) and "error" in raw}
    listed = [(raw, key) for raw, key in zip(items, keys, strict=True) if key not in unlisted]
    within = items_within(Path(job.root), [key for _, key in listed], job.allowed_roots)
    inside = [raw for (raw, _), ok in zip(listed, within, strict=True) if ok]
    by_item = {r[ITEM]: r for r in pipeline.process_items(job.root, inside, job.output_dir)} if inside else {}
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


def _check_source(root: str, records: Sequence[dict]) -> None:
    """Raise :class:`SourceUnavailable` if the chunk's failures are the source's, not the items': files not
    found while the source folder itself is gone, or more than half the chunk's files not found."""
    missing = [r for r in records if r.get(STATUS) == FAILED and r.get(ERROR_CODE) not in _ENTRY_FAILURES
               and not os.path.lexists(os.path.join(root, str(r[ITEM])))]
    if missing and (not os.path.isdir(root) or 2 * len(missing) > len(records)):
        raise SourceUnavailable(
            f"the source went away while the task ran ({len(missing)} of {len(records)} items of a chunk were "
            f"not found{'; its folder is gone' if not os.path.isdir(root) else ''}): restore {root!r} and "
            "resume the task to process the rest")


def process_chunk(plugins: Sequence[str], specs: Sequence[dict], root: str, items: Sequence[str | dict],
                  allowed_roots: Sequence[str], output_dir: str | None = None) -> list[dict]:
    """:func:`run_chunk` with the job given field by field (for tools and tests that run one chunk)."""
    return run_chunk(ChunkJob(tuple(plugins), tuple(specs), root, tuple(allowed_roots), output_dir), items)


#: What a chunk raises to fail the task (whichever path ran it); :func:`chunk_failure` says how.
CHUNK_FAILURES = (OperatorError, SourceUnavailable)


def chunk_failure(exc: OperatorError | SourceUnavailable) -> TaskFailure:
    """The task's failure when a chunk failed (an operator, or its source gone): the same type and message on
    every path."""
    if isinstance(exc, SourceUnavailable):
        return TaskFailure(ErrorType.SOURCE_UNAVAILABLE, str(exc))
    return TaskFailure(ErrorType.OPERATOR_ERROR, str(exc).strip().splitlines()[-1])


def chunk_cpus(pipeline: Pipeline) -> float:
    """CPUs a chunk task asks for: the most any of the pipeline's operators declares, and at least 1."""
    return max([1.0, *(float(op.num_cpus) for op in pipeline.operators)])
