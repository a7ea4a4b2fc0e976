"""A run's state: its claim on the task, the frozen item list, committed chunks, progress and stop mark.

On disk (see :mod:`jobs.layout`): the manifest freezes the items the first run
listed, and every finished chunk is committed atomically as a part file, so a
resumed run skips what is done. In the database: the claim, the progress
counters and the stop mark a ``stop`` request leaves, which :class:`Progress`
reads back each time it writes the counters.

Kept free of numpy and the operators, so the runner can claim within a few
milliseconds of starting.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from jobs.atomic import dump_records, write_atomic
from jobs.layout import RunLayout
from jobs.store import Store, TaskRecord

#: Record keys the counters read (the same as ``operators.pipeline.STATUS`` / ``OK``, without importing numpy).
_STATUS, _OK = "status", "ok"


def claim(store: Store, task_id: str, run_id: str) -> TaskRecord | None:
    """The task, if this run may work on it: still its current run, and not stopped while Ray held it PENDING."""
    if not store.claim_run(task_id, run_id):
        return None
    return store.get_task(task_id)


@dataclass(frozen=True)
class Manifest:
    """The frozen item list: ``items`` are relative to ``root``; ``chunk_size`` is fixed by the first run."""

    root: str
    items: list
    chunk_size: int

    def chunks(self) -> list[list]:
        return [list(self.items[i:i + self.chunk_size]) for i in range(0, len(self.items), self.chunk_size)]


def counts(records: Sequence[dict]) -> tuple[int, int]:
    """(processed, failed) among one chunk's records."""
    ok = sum(1 for r in records if r.get(_STATUS) == _OK)
    return ok, len(records) - ok


class RunState:
    """The manifest and committed part files of one task's output folder (a server folder or a bucket
    prefix: a part is committed whole either way, by a rename or by one PUT)."""

    def __init__(self, layout: RunLayout, chunk_size: int) -> None:
        self.layout = layout
        layout.parts_dir.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size

    def load_or_create_manifest(self, list_fn: Callable[[], tuple[object, list]]) -> Manifest:
        data = self.layout.read_manifest()
        if data is None:
            root, items = list_fn()
            data = {"root": str(root), "items": items, "chunk_size": self.chunk_size}
            write_atomic(self.layout.manifest, json.dumps(data))
        return Manifest(data["root"], data["items"], int(data["chunk_size"]))

    def committed(self) -> set[int]:
        return {int(p.stem) for p in self.layout.parts_dir.glob("*.jsonl") if p.stem.isdigit()}

    def commit(self, index: int, records: Sequence[dict]) -> None:
        # One chunk's records are small: joined first, a part in a bucket is one PUT of the whole object.
        write_atomic(self.layout.part(index), "".join(dump_records(records)))

    def record_placement(self, run_id: str, placement: dict[int, str]) -> None:
        """Which node committed each chunk in this run (for operators of the cluster, and tests)."""
        self.layout.runs_dir.mkdir(exist_ok=True)
        write_atomic(self.layout.placement(run_id), json.dumps({str(k): v for k, v in sorted(placement.items())}))

    def read(self, index: int) -> list[dict]:
        return list(self.iter_read(index))

    def iter_read(self, index: int) -> Iterator[dict]:
        """A committed part's records, one line at a time."""
        with self.layout.part(index).open(encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)

    def stream(self, n_chunks: int) -> Iterator[dict]:
        """Every record of chunks ``0 .. n_chunks - 1``, in item order."""
        for index in range(n_chunks):
            yield from self.iter_read(index)

    def committed_counts(self) -> tuple[int, int]:
        """(processed, failed) over the chunks committed so far (a resumed run starts from them)."""
        processed = failed = 0
        for index in sorted(self.committed()):
            ok, bad = counts(self.read(index))
            processed, failed = processed + ok, failed + bad
        return processed, failed


class Progress:
    """Progress counters, written to the database at most a few times a second.

    Each write also reads the task's stop mark: a stop requested through the
    database (not only Ray's SIGTERM) sets ``stop_event``.
    """

    #: Seconds between two writes of the counters (a forced flush writes at once).
    INTERVAL = 0.25

    def __init__(self, store: Store, task_id: str, run_id: str, stop_event: threading.Event, *, total: int,
                 processed: int = 0, failed: int = 0) -> None:
        self.store, self.task_id, self.run_id, self.stop_event = store, task_id, run_id, stop_event
        self.total, self.processed, self.failed = total, processed, failed
        self.computed = 0
        self._last = 0.0

    def add(self, records: Sequence[dict]) -> None:
        ok, bad = counts(records)
        self.processed += ok
        self.failed += bad
        self.computed += len(records)
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        stop = self.store.record_progress(self.task_id, self.run_id, total=self.total, processed=self.processed,
                                          failed=self.failed, computed_in_run=self.computed)
        if stop:
            self.stop_event.set()
