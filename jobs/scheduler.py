"""Running a run's chunks: a scheduler over one small executor interface.

:class:`Scheduler` decides what runs when; a :class:`ChunkExecutor` runs chunks
somewhere. :class:`RayExecutor` runs each chunk as a Ray task (production);
:class:`InProcessExecutor` runs them on threads of this process, so the
scheduling can be tested without a cluster. What the scheduler promises:

- chunks commit as they finish; at most ``executor.capacity`` are in flight
  (two per cluster CPU on Ray), so the driver's memory stays flat;
- while the cluster's new workers boot, the driver processes chunks itself
  (for at most ``WARMUP_SECONDS``, and only until the first chunk comes back);
- on a stop it submits nothing more, drops the chunks in flight that have not
  started (:class:`StartGate`), and lets the started ones finish and commit;
- a run of one chunk processes it in the driver and never connects to the cluster.

Worker and node loss are retried by Ray (``max_retries``); a chunk is idempotent.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from jobs.chunk import CHUNK_FAILURES, ChunkJob, chunk_failure, run_chunk
from jobs.locations import Location, as_location
from jobs.run_state import Progress, RunState
from jobs.signals import install_stop_handler
from jobs.status import ErrorType, TaskFailure

log = logging.getLogger("rayproc.runner")

#: How long the driver may process chunks itself while the cluster's workers start.
WARMUP_SECONDS = 10.0
#: How long one wait for a finished chunk lasts once the workers are up (the stop flag is checked between waits).
POLL_SECONDS = 0.5
#: Retries of a chunk whose worker or node was lost.
MAX_RETRIES = 3
#: Node name of the driver in placement records when no cluster names it.
LOCAL_NODE = "driver"


class StartGate:
    """Lets a stop drop the chunks in flight that have not started, and only those.

    A chunk task first marks itself started, then looks for the stop mark; a stopping
    driver first sets the stop mark, then cancels the chunks not marked started. A chunk
    that started before the stop runs to the end and is committed as before; one that
    starts after it finds the mark and returns at once, so cancelling it loses nothing.
    Both sides only create files, so the order holds on any storage that shows a
    created file to later readers, as the shared work path must (a bucket does:
    S3-compatible stores read their own writes).

    When the run ends the gate is retired, not removed: a cancelled chunk that a
    worker starts anyway while the driver exits still finds the stop mark. (A gate
    that is missing altogether means the work path is out of reach from that node.)
    """

    def __init__(self, path: str | Location) -> None:
        self.path = as_location(path)

    def enter(self, index: int) -> bool:
        try:
            (self.path / f"{index}.started").touch(exist_ok=True)  # a retry after a worker was lost: again
            return not (self.path / "stop").exists()
        except OSError:  # the gate is out of reach from this node: work as if there were no gate
            return True

    def close(self) -> None:
        (self.path / "stop").touch()

    def started(self, index: int) -> bool:
        return (self.path / f"{index}.started").exists()

    def retire(self) -> None:
        """Close the gate for good and drop its start marks; only the stop mark stays."""
        self.close()
        for mark in self.path.glob("*.started"):
            mark.unlink(missing_ok=True)


def gated_chunk(gate: str, index: int, job: ChunkJob, items: Sequence[str | dict]) -> list[dict] | None:
    """A chunk behind the run's start gate: its records, or None if the run was stopped before it started."""
    return run_chunk(job, items) if StartGate(gate).enter(index) else None


@dataclass(frozen=True)
class Finished:
    """A chunk an executor ran: the node it ran on and its records (None: dropped at the start gate)."""

    node: str
    records: list[dict] | None


class ChunkExecutor(Protocol):
    """Where chunks run. Handles are opaque to the scheduler."""

    #: Chunks the scheduler may keep in flight.
    capacity: int
    #: The node the driver runs on (named in placement records for the chunks it processes itself).
    driver_node: str

    def submit(self, index: int, items: Sequence[str | dict]) -> object: ...

    def wait(self, handles: Sequence[object], timeout: float) -> list[object]:
        """The handles among ``handles`` whose chunk has finished (at most one), waiting up to ``timeout``."""

    def result(self, handle: object, index: int) -> Finished:
        """Chunk ``index``'s outcome, once finished; raises :class:`TaskFailure` if it failed."""

    def cancel(self, handle: object) -> None: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Chunks on a pool of threads in this process, behind the same start gate as on Ray."""

    def __init__(self, job: ChunkJob, gate: StartGate, *, threads: int = 1, capacity: int | None = None,
                 node: str = LOCAL_NODE) -> None:
        self.job, self.gate, self.node = job, gate, node
        self.capacity = capacity if capacity is not None else 2 * threads
        self.driver_node = LOCAL_NODE
        self._pool = cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rayproc-chunk")

    def submit(self, index: int, items: Sequence[str | dict]) -> cf.Future:
        return self._pool.submit(gated_chunk, str(self.gate.path), index, self.job, items)

    def wait(self, handles: Sequence[cf.Future], timeout: float) -> list[cf.Future]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [next(f for f in handles if f in done)] if done else []

    def result(self, handle: cf.Future, index: int) -> Finished:
        try:
            return Finished(self.node, handle.result())
        except CHUNK_FAILURES as exc:
            raise chunk_failure(exc) from exc

    def cancel(self, handle: cf.Future) -> None:
        handle.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _chunk_on_node(gate: str, index: int, job: ChunkJob, items: Sequence[str | dict]) -> tuple[str, list | None]:
    """:func:`gated_chunk` as a Ray task, reporting which node ran it."""
    import ray

    return ray.get_runtime_context().get_node_id(), gated_chunk(gate, index, job, items)


class RayExecutor:
    """Each chunk a Ray task asking for ``num_cpus``; two chunks per cluster CPU in flight."""

    def __init__(self, job: ChunkJob, gate: StartGate, *, num_cpus: float, stop_event: threading.Event,
                 address: str | None = None) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        # ray.init installs its own SIGTERM handler (exit at once); ours lets chunks in flight finish.
        install_stop_handler(stop_event)
        self._ray = ray
        self.job, self.gate = job, gate
        self.remote = ray.remote(num_cpus=num_cpus, max_retries=MAX_RETRIES)(_chunk_on_node)
        self.capacity = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        self.driver_node = ray.get_runtime_context().get_node_id()
        self._job_ref = None

    def submit(self, index: int, items: Sequence[str | dict]) -> object:
        if self._job_ref is None:  # the job is the same for every chunk: put it in the object store once
            self._job_ref = self._ray.put(self.job)
        return self.remote.remote(str(self.gate.path), index, self._job_ref, items)

    def wait(self, handles: Sequence[object], timeout: float) -> list[object]:
        ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        return ready

    def result(self, handle: object, index: int) -> Finished:
        ray = self._ray
        try:
            node, records = ray.get(handle)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, CHUNK_FAILURES):
                raise chunk_failure(exc.cause) from exc
            raise TaskFailure(ErrorType.OPERATOR_ERROR, str(exc).strip().splitlines()[-1]) from exc
        except ray.exceptions.RayError as exc:  # retries exhausted: worker or node lost every time
            # Ray's text can hold a whole traceback: it goes to the run's log, its first line to the task.
            log.error("chunk %d could not be processed on the cluster: %s", index, exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TaskFailure(ErrorType.CLUSTER_ERROR,
                              f"chunk {index} could not be processed on the cluster: {first[:300]}") from exc
        return Finished(node, records)

    def cancel(self, handle: object) -> None:
        self._ray.cancel(handle)

    def close(self) -> None:
        pass  # the driver's exit ends its tasks


class Scheduler:
    """Runs the chunks of one run not yet committed, committing each as it finishes.

    ``connect`` makes the executor; it is called only when there is more than one
    chunk, so a one-chunk run never connects to the cluster. ``stopping`` is checked
    before every submission and between waits.
    """

    def __init__(self, state: RunState, job: ChunkJob, progress: Progress, *, run_id: str,
                 stopping: Callable[[], bool], connect: Callable[[StartGate], ChunkExecutor],
                 warmup_seconds: float = WARMUP_SECONDS, poll_seconds: float = POLL_SECONDS) -> None:
        self.state, self.job, self.progress, self.run_id = state, job, progress, run_id
        self.stopping, self.connect = stopping, connect
        self.warmup_seconds, self.poll_seconds = warmup_seconds, poll_seconds

    def run(self, chunks: Sequence[Sequence[str | dict]], todo: Sequence[int]) -> None:
        if not todo:
            return
        if len(chunks) == 1:
            # One chunk: no parallelism to gain, and connecting to the cluster costs more than the work.
            self.commit(0, self.process_here(chunks[0]))
            return
        gate = StartGate(self.state.layout.gate(self.run_id))
        gate.path.mkdir(parents=True, exist_ok=True)
        placement: dict[int, str] = {}
        try:
            executor = self.connect(gate)
            try:
                _Drain(self, executor, gate, chunks, todo, placement).run()
            finally:
                executor.close()
        finally:
            self.state.record_placement(self.run_id, placement)
            gate.retire()

    def process_here(self, items: Sequence[str | dict]) -> list[dict]:
        try:
            return run_chunk(self.job, items)
        except CHUNK_FAILURES as exc:
            raise chunk_failure(exc) from exc

    def commit(self, index: int, records: list[dict]) -> None:
        self.state.commit(index, records)
        self.progress.add(records)


class _Drain:
    """One pass of the scheduler over an executor: submit, wait, commit, until nothing is in flight."""

    def __init__(self, scheduler: Scheduler, executor: ChunkExecutor, gate: StartGate,
                 chunks: Sequence[Sequence[str | dict]], todo: Sequence[int], placement: dict[int, str]) -> None:
        self.s, self.executor, self.gate, self.chunks = scheduler, executor, gate, chunks
        self.pending = iter(todo)
        self.in_flight: dict[object, int] = {}
        self.placement = placement

    def run(self) -> None:
        warm_until = time.monotonic() + self.s.warmup_seconds
        warming = self.s.warmup_seconds > 0  # until the first chunk comes back from the cluster
        gate_closed = False
        self._submit_more()
        while self.in_flight:
            if self.s.stopping() and not gate_closed:
                # Chunks not started yet (queued, or waiting for a new worker to boot) are dropped rather than
                # waited for; the started ones finish and are kept. A resume runs the dropped ones.
                self.gate.close()
                gate_closed = True
                self._drop_unstarted()
                continue
            ready = self.executor.wait(list(self.in_flight), 0 if warming else self.s.poll_seconds)
            for handle in ready:
                warming = False
                index = self.in_flight.pop(handle)
                finished = self.executor.result(handle, index)
                if finished.records is not None:  # None: it found the run stopped before it started
                    self._commit(index, finished.records, finished.node)
            if not ready:
                if warming and time.monotonic() < warm_until:
                    warming = self._run_in_driver()
                self.s.progress.flush()
            self._submit_more()

    def _submit_more(self) -> None:
        while len(self.in_flight) < self.executor.capacity and not self.s.stopping():
            index = next(self.pending, None)
            if index is None:
                return
            self.in_flight[self.executor.submit(index, self.chunks[index])] = index

    def _drop_unstarted(self) -> None:
        for handle, index in list(self.in_flight.items()):
            if not self.gate.started(index):
                self.executor.cancel(handle)
                del self.in_flight[handle]

    def _run_in_driver(self) -> bool:
        """One chunk in the driver: a new job's workers take a second or more to start and import
        their libraries, time the driver (already warm) would otherwise spend waiting."""
        index = next(self.pending, None) if not self.s.stopping() else None
        if index is None:
            return False
        self._commit(index, self.s.process_here(self.chunks[index]), self.executor.driver_node)
        return True

    def _commit(self, index: int, records: list[dict], node: str) -> None:
        self.s.commit(index, records)
        self.placement[index] = node
