"""Following a run's log: the stream on the real cluster, the CLI's ``logs -f``, and the stream's bounds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from jobs.layout import RunLayout
from jobs.store import Store
from serve_app.cli import main
from serve_app.job_records import LOG_CHUNK_BYTES, follow_run_log, iter_kept_log
from tests.conftest import Service
from tests.support.images import make_many


def _probe(delay: float, **hold) -> dict:
    return {"id": "sys_data_analyse", "operator_params": [
        {"id": "image_features", "params": {}},
        {"id": "work_probe", "params": {"delay_seconds": delay, **hold}}]}


@pytest.mark.ray
def test_follow_streams_while_the_run_goes_on_and_ends_with_it(
        service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 16)
    # Every item waits for ``release``, which the test makes once the stream has shown the run's start:
    # the run cannot end before the stream has shown it going on.
    release = tmp_path / "release"
    task_id = service.create(folder, name="followed", template=_probe(0.05, release_file=str(release)),
                             execution={"chunk_size": 4})
    url = f"{service.tasks()}/{task_id}/logs"
    arrivals: list[tuple[int, str]] = []  # (epoch ms, chunk)
    with service.client.stream("GET", url, params={"follow": "true"}, timeout=httpx.Timeout(30, read=120)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        for chunk in r.iter_text():
            arrivals.append((int(time.time() * 1000), chunk))
            if "items in" in chunk:
                release.touch()
    text = "".join(c for _, c in arrivals)
    task = service.get(task_id)
    # The stream ended because the run did: the task is completed and the runner's last line is in it.
    assert task["status"] == 2, task
    assert "16 items in 4 chunks" in text and "finished: completed" in text
    assert "[rayproc:" not in text  # no bound was reached
    # It streamed as the log grew: the start line arrived before the run ended.
    first = next(at for at, chunk in arrivals if "items in" in chunk)
    assert first < task["runs"][0]["end_time"]

    # Once ended, the followed log is the whole log, as a plain read answers it.
    whole = service.client.get(url)
    assert whole.status_code == 200
    with service.client.stream("GET", url, params={"follow": "true"}) as again:
        assert again.read().decode() == whole.text

    # The clients' follow, sync and async, read the same text.
    from rayproc_client import AsyncClient, Client

    token = service.client.headers["Authorization"].removeprefix("Token ")
    with Client(service.url, token) as client:
        assert "".join(client.follow_task_logs("p1", task_id)) == whole.text

    async def follow_async() -> str:
        async with AsyncClient(service.url, token) as client:
            return "".join([chunk async for chunk in client.follow_task_logs("p1", task_id)])

    assert asyncio.run(follow_async()) == whole.text

    code = CliRunner().invoke(main, ["logs", "-f", task_id], env={
        "RAYPROC_URL": service.url, "RAYPROC_PROJECT": "p1",
        "RAYPROC_TOKEN": service.client.headers["Authorization"].removeprefix("Token ")})
    assert code.exit_code == 0 and code.stdout == whole.text


@pytest.mark.ray
def test_follow_of_an_unknown_task_or_run_is_an_error_before_any_stream(service: Service, folder: Path) -> None:
    r = service.client.get(f"{service.tasks()}/NoSuchTask0123456789/logs", params={"follow": "true"})
    assert r.status_code == 404 and r.json()["error_code"] == "not_found"
    make_many(folder, 1)
    task_id = service.create(folder, name="one-run")
    r = service.client.get(f"{service.tasks()}/{task_id}/logs", params={"follow": "true", "run": "3"})
    assert r.status_code == 404 and "1 run" in r.json()["error_msg"]


# ----- the bounds, with stand-ins for Ray's log tail (a real database and real files) -----


class _Tail:
    """A launcher whose log tail sends ``chunk`` forever, or nothing ever (``chunk=None``)."""

    def __init__(self, chunk: str | None) -> None:
        self.chunk = chunk
        self.closed = False

    async def tail_logs(self, run_id: str):
        try:
            while True:
                if self.chunk is None:
                    await asyncio.sleep(3600)
                yield self.chunk
                await asyncio.sleep(0)
        finally:
            self.closed = True


def _submitted_task(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(tmp_path / "db.sqlite")
    store.insert_task({
        "task_id": "t1", "project_id": "p", "workspace_id": "0", "name": "n", "description": "",
        "task_type": "sys_data_analyse", "source_type": "OBS", "source": str(tmp_path), "version_id": None,
        "version_name": None, "data_source": None, "inputs": [], "template": {}, "work_path": {},
        "input_root": str(tmp_path), "output_dir": str(tmp_path / "out"), "execution": {}, "current_run": "r1",
        "priority": 0})
    store.mark_submitted("r1")
    return store, "t1", "r1"


async def _collect(gen) -> list[str]:
    return [chunk async for chunk in gen]


def test_a_stream_stops_after_max_bytes_whatever_the_reader(tmp_path: Path) -> None:
    store, task_id, run_id = _submitted_task(tmp_path)
    tail = _Tail("x" * 1000 + "\n")
    chunks = asyncio.run(_collect(follow_run_log(store, tail, task_id=task_id, run_id=run_id,
                                                 output_dir=str(tmp_path / "out"), current=False,
                                                 max_seconds=600, max_bytes=10_000)))
    body = "".join(chunks)
    assert body.count("x") == 10_000 - 9 * 1  # nine whole lines and their newlines, then the cut
    assert "stream ends here after 10000 bytes" in body and tail.closed


def test_a_silent_log_ends_at_max_seconds(tmp_path: Path) -> None:
    store, task_id, run_id = _submitted_task(tmp_path)
    tail = _Tail(None)
    chunks = asyncio.run(_collect(follow_run_log(store, tail, task_id=task_id, run_id=run_id,
                                                 output_dir=str(tmp_path / "out"), current=False,
                                                 max_seconds=0.5, max_bytes=10_000)))
    assert len(chunks) == 1 and "after 0 s; the run goes on" in chunks[0] and tail.closed


def test_a_kept_log_is_read_a_chunk_at_a_time(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "out")
    layout.runs_dir.mkdir(parents=True)
    text = "".join(f"line {i:07d} of a long log\n" for i in range(120_000))  # ~3.2 MB
    layout.run_log("r1").write_text(text)
    chunks = list(iter_kept_log(tmp_path / "out", "r1"))
    assert max(len(c.encode()) for c in chunks) == LOG_CHUNK_BYTES and "".join(chunks) == text
    store, task_id, run_id = _submitted_task(tmp_path)
    streamed = asyncio.run(_collect(follow_run_log(store, _Tail(None), task_id=task_id, run_id=run_id,
                                                   output_dir=str(tmp_path / "out"), current=False,
                                                   max_seconds=600, max_bytes=1_000_000)))
    assert "".join(streamed).startswith(text[:999_000]) and "after 1000000 bytes" in streamed[-1]
    assert iter_kept_log(tmp_path / "out", "no-such-run") is None
