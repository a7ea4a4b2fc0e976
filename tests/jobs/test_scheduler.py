"""The chunk unit and the scheduler, without Ray: real images, real part files, a real database,
and the in-process executor in place of the cluster."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jobs import runner
from jobs.assembly import assemble
from jobs.catalog import build_pipeline, load_plugins
from jobs.chunk import ChunkJob, chunk_cpus, pipeline_for, process_chunk, run_chunk
from jobs.layout import RunLayout
from jobs.run_state import Manifest, Progress, RunState
from jobs.scheduler import LOCAL_NODE, InProcessExecutor, Scheduler, StartGate
from jobs.sources import list_items
from jobs.status import ErrorType, TaskFailure, TaskStatus
from jobs.store import Store
from operators.base import Operator, TaskType
from operators.pipeline import Pipeline
from operators.registry import default_registry
from tests.support.images import make_many

PLUGINS = ("tests.support.probe_operators",)
FEATURES = {"id": "image_features", "params": {}}
FAILURE = "operator 'chunk_probe' failed: ValueError: probe refuses img_0003.png"


class _RecordingState(RunState):
    """The run's state, noting the order chunks commit in."""

    def __init__(self, layout: RunLayout, chunk_size: int) -> None:
        super().__init__(layout, chunk_size)
        self.order: list[int] = []

    def commit(self, index: int, records) -> None:
        self.order.append(index)
        super().commit(index, records)


class _Run:
    """One task's run on disk and in the database, with its items one per chunk unless told otherwise."""

    def __init__(self, tmp_path: Path, n: int, specs: list[dict], chunk_size: int = 1, name: str = "out") -> None:
        self.folder = tmp_path / "in"
        if not self.folder.exists():
            make_many(self.folder, n)
        self.store = Store(tmp_path / "db.sqlite")
        self.task_id = name
        self.store.insert_task({
            "task_id": name, "project_id": "p", "workspace_id": "0", "name": name, "description": "",
            "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(self.folder), "version_id": None,
            "version_name": None, "data_source": None, "inputs": [],
            "template": {"id": "sys_data_analyse", "operator_params": specs}, "work_path": {},
            "input_root": str(self.folder), "output_dir": str(tmp_path / name),
            "execution": {"chunk_size": chunk_size}, "current_run": f"{name}-r1",
        })
        assert self.store.claim_run(name, f"{name}-r1")
        self.layout = RunLayout(tmp_path / name)
        self.state = _RecordingState(self.layout, chunk_size)
        self.manifest: Manifest = self.state.load_or_create_manifest(lambda: list_items(self.folder))
        self.job = ChunkJob(PLUGINS, tuple(specs), self.manifest.root, (str(tmp_path),), str(self.layout.output_dir))
        self.stop = threading.Event()

    def scheduler(self, run: int = 1, *, threads: int = 1, capacity: int = 2, warmup: float = 0.0,
                  stopping=None) -> Scheduler:
        processed, failed = self.state.committed_counts()
        progress = Progress(self.store, self.task_id, f"{self.task_id}-r1", self.stop,
                            total=len(self.manifest.items), processed=processed, failed=failed)
        return Scheduler(
            self.state, self.job, progress, run_id=f"{self.task_id}-r{run}", stopping=stopping or self.stop.is_set,
            connect=lambda gate: InProcessExecutor(self.job, gate, threads=threads, capacity=capacity, node="worker"),
            warmup_seconds=warmup, poll_seconds=0.05)

    @property
    def commits(self) -> list[int]:
        return self.state.order

    def run(self, scheduler: Scheduler) -> None:
        chunks = self.manifest.chunks()
        scheduler.run(chunks, [i for i in range(len(chunks)) if i not in self.state.committed()])
        scheduler.progress.flush(force=True)

    def pipeline(self) -> Pipeline:
        registry = default_registry()
        load_plugins(PLUGINS, registry)
        return build_pipeline(list(self.job.specs), registry)

    def features(self) -> bytes:
        assemble(self.state, len(self.manifest.chunks()), self.pipeline(), self.manifest.root)
        return self.layout.features.read_bytes()


def _logged(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ----- the chunk unit -----------------------------------------------------------------------


def test_a_chunk_returns_one_record_per_item_in_order(tmp_path: Path) -> None:
    names = make_many(tmp_path, 3)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    job = ChunkJob((), (FEATURES,), str(tmp_path), (str(tmp_path),))
    records = run_chunk(job, ["img_0002.png", "broken.png", names[0]])
    assert [r["item"] for r in records] == ["img_0002.png", "broken.png", "img_0000.png"]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert records[1]["error_code"] == "not_an_image"
    assert process_chunk([], [FEATURES], str(tmp_path), ["img_0002.png"], [str(tmp_path)]) == records[:1]


def test_operators_are_built_once_per_worker_not_once_per_chunk() -> None:
    specs = [FEATURES, {"id": "work_probe", "params": {"delay_seconds": 0.0}}]
    first = pipeline_for(PLUGINS, specs)
    assert pipeline_for(PLUGINS, [dict(s) for s in specs]) is first  # equal specs, same operators
    assert pipeline_for(PLUGINS, [FEATURES]) is not first
    other_thread: list[Pipeline] = []
    worker = threading.Thread(target=lambda: other_thread.append(pipeline_for(PLUGINS, specs)))
    worker.start()
    worker.join()
    assert other_thread[0] is not first  # operators are never shared between threads


def test_a_chunk_task_asks_for_the_most_cpus_any_operator_declares() -> None:
    def op(cpus: float) -> Operator:
        cls = type(f"Op{cpus}".replace(".", "_"), (Operator,),
                   {"name": "x", "task_type": TaskType.ANALYSE, "num_cpus": cpus})
        return cls()

    assert chunk_cpus(Pipeline([op(1.0), op(2.0)])) == 2.0
    assert chunk_cpus(Pipeline([op(1.5)])) == 1.5
    assert chunk_cpus(Pipeline([op(0.25)])) == 1.0  # at least one CPU per chunk
    assert chunk_cpus(Pipeline([])) == 1.0


# ----- the scheduler ------------------------------------------------------------------------


def test_chunks_commit_as_they_finish_and_the_outputs_follow_item_order(tmp_path: Path) -> None:
    slow_first = {"id": "chunk_probe", "params": {"slow_items": ["img_0000.png"], "delay_seconds": 0.5}}
    run = _Run(tmp_path, 7, [FEATURES, slow_first], chunk_size=2)
    run.run(run.scheduler(threads=2, capacity=3))
    assert sorted(run.commits) == [0, 1, 2, 3]  # each chunk once
    assert run.commits[-1] == 0  # the slow first chunk did not hold back the others' commits
    assert run.state.committed() == {0, 1, 2, 3}
    assert [r["item"] for r in run.state.stream(4)] == [f"img_{i:04d}.png" for i in range(7)]
    placement = run.layout.placements()
    assert placement == {str(i): "worker" for i in range(4)}
    # Once the run has ended its gate stays closed: a chunk a worker starts late does no work.
    assert StartGate(run.layout.gate("out-r1")).enter(1) is False


def test_a_single_chunk_runs_in_the_driver_without_connecting(tmp_path: Path) -> None:
    run = _Run(tmp_path, 3, [FEATURES], chunk_size=8)
    scheduler = run.scheduler()
    scheduler.connect = lambda gate: pytest.fail("a one-chunk run must not connect to the cluster")
    run.run(scheduler)
    assert run.commits == [0] and len(run.state.read(0)) == 3


def test_the_driver_works_while_the_workers_start(tmp_path: Path) -> None:
    log = tmp_path / "work.log"
    run = _Run(tmp_path, 6, [FEATURES, {"id": "work_probe", "params": {"delay_seconds": 0.2,
                                                                      "log_path": str(log)}}])
    run.run(run.scheduler(warmup=10.0))
    placement = run.layout.placements()
    assert sorted(placement) == [str(i) for i in range(6)]
    assert LOCAL_NODE in placement.values() and "worker" in placement.values()
    assert sorted(_logged(log)) == [f"img_{i:04d}.png" for i in range(6)]  # each item once, wherever it ran


def test_a_stop_drops_chunks_not_started_and_commits_the_started_ones(tmp_path: Path) -> None:
    log, stop_file = tmp_path / "work.log", tmp_path / "stop"
    specs = [FEATURES, {"id": "work_probe", "params": {"log_path": str(log)}},
             {"id": "chunk_probe", "params": {"slow_items": ["img_0001.png"], "stop_file": str(stop_file),
                                              "delay_seconds": 0.5}}]
    run = _Run(tmp_path, 6, specs)
    # Chunk 1 asks for the stop while it runs; chunks 2 and 3 are in flight but not started.
    run.run(run.scheduler(threads=1, capacity=3, stopping=stop_file.exists))
    assert sorted(run.commits) == [0, 1]
    assert run.state.committed() == {0, 1}
    assert _logged(log) == ["img_0000.png", "img_0001.png"]  # dropped chunks did no work
    rec = run.store.get_task("out")
    assert (rec.processed_count, rec.failed_count, rec.total_count) == (2, 0, 6)

    # The resumed run skips the committed chunks and ends with the bytes of an uninterrupted run.
    stop_file.unlink()
    run.commits.clear()
    run.run(run.scheduler(run=2, threads=1, capacity=3, stopping=lambda: False))
    assert sorted(run.commits) == [2, 3, 4, 5]
    assert sorted(_logged(log)) == [f"img_{i:04d}.png" for i in range(6)]
    assert len(_logged(log)) == 6
    reference = _Run(tmp_path, 6, [FEATURES, {"id": "work_probe", "params": {}},
                                   {"id": "chunk_probe", "params": {}}], name="ref")
    reference.run(reference.scheduler(threads=2, capacity=4))
    assert run.features() == reference.features()


def test_progress_counts_every_committed_item_and_a_stop_mark_stops_the_run(tmp_path: Path) -> None:
    run = _Run(tmp_path, 5, [FEATURES], chunk_size=2)
    (run.folder / "img_0004.png").write_bytes(b"truncated")  # listed already: it fails alone
    run.run(run.scheduler(threads=2, capacity=2))
    rec = run.store.get_task("out")
    assert (rec.processed_count, rec.failed_count, rec.total_count) == (4, 1, 5)

    marked = _Run(tmp_path, 5, [FEATURES, {"id": "work_probe", "params": {"delay_seconds": 0.2}}], name="marked")
    marked.store.request_stop("marked")
    marked.run(marked.scheduler(threads=1, capacity=1))  # the first progress write reads the mark
    assert marked.stop.is_set()
    assert 0 < len(marked.state.committed()) < 5


@pytest.mark.parametrize("chunk_size, threads, warmup", [(8, 1, 0.0), (1, 1, 0.0), (1, 2, 10.0)],
                         ids=["one-chunk-in-the-driver", "several-chunks-on-workers", "several-with-warm-up"])
def test_an_operator_that_raises_is_an_operator_error_on_every_path(
        tmp_path: Path, chunk_size: int, threads: int, warmup: float) -> None:
    run = _Run(tmp_path, 6, [FEATURES, {"id": "chunk_probe", "params": {"fail_items": ["img_0003.png"]}}],
               chunk_size=chunk_size)
    with pytest.raises(TaskFailure) as info:
        run.run(run.scheduler(threads=threads, capacity=2, warmup=warmup))
    assert info.value.error_type == ErrorType.OPERATOR_ERROR
    assert info.value.message == FAILURE


@pytest.mark.parametrize("chunk_size", [8, 1], ids=["one-chunk", "several-chunks"])
def test_the_runner_records_an_operator_failure_as_operator_error(tmp_path: Path, chunk_size: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.execution as execution

    run = _Run(tmp_path, 6, [FEATURES, {"id": "chunk_probe", "params": {"fail_items": ["img_0003.png"]}}],
               chunk_size=chunk_size, name="r")
    run.store.insert_task({**_row(run), "task_id": "t2", "current_run": "t2-r1"})
    # Several chunks run on the in-process executor here; tests/serve_app runs the same on Ray.
    monkeypatch.setattr(execution, "RayExecutor",
                        lambda job, gate, num_cpus, stop_event, address=None: InProcessExecutor(job, gate, threads=1))
    code = runner.main(["--db", run.store.path, "--task-id", "t2", "--run-id", "t2-r1",
                        "--allowed-root", str(tmp_path), "--plugin", PLUGINS[0]])
    assert code == 1
    rec = run.store.get_task("t2")
    assert rec.status == TaskStatus.FAILED
    assert (rec.error_type, rec.error_msg) == ("operator_error", FAILURE)


def _row(run: _Run) -> dict:
    rec = run.store.get_task(run.task_id)
    return {"project_id": "p", "workspace_id": "0", "name": "t2", "description": "", "task_type": rec.task_type,
            "source_type": "OBS", "source": rec.input_root, "version_id": None, "version_name": None,
            "data_source": None, "inputs": [], "template": rec.template, "work_path": {},
            "input_root": rec.input_root, "output_dir": str(Path(rec.output_dir).parent / "t2"),
            "execution": rec.execution}

