"""The Jobs API client never waits on Ray without a deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from jobs.launcher import JobLauncher, RayUnavailable
from tests.support.hung import hung_listener


@pytest.fixture
def hung_dashboard() -> Iterator[str]:
    with hung_listener() as url:
        yield url


@pytest.mark.parametrize("call", ["state", "states", "stop", "logs"])
def test_every_call_gives_up_at_its_deadline(hung_dashboard: str, call: str) -> None:
    launcher = JobLauncher(hung_dashboard, call_timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(RayUnavailable):
        if call == "states":
            launcher.states()
        else:
            getattr(launcher, call)("rayproc-someTask-r1-abcdef")
    # The constructor's version check and the call itself each wait at most the deadline.
    assert time.monotonic() - started < 3.0


def test_submit_gives_up_at_its_deadline(hung_dashboard: str) -> None:
    launcher = JobLauncher(hung_dashboard, call_timeout_seconds=0.5, submit_retry_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(RayUnavailable):
        launcher.submit(run_id="rayproc-someTask-r1-abcdef", entrypoint="true", metadata={})
    assert time.monotonic() - started < 3.0


def test_a_read_launcher_waits_once_then_fails_at_once_until_its_backoff_passes(hung_dashboard: str) -> None:
    now = [0.0]
    # The backoff's clock is the test's; the socket deadline is real time.
    launcher = JobLauncher(hung_dashboard, call_timeout_seconds=10.0, clock=lambda: now[0]).for_reads(
        0.3, backoff_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(RayUnavailable):
        launcher.states()
    assert time.monotonic() - started < 1.0  # the read deadline, not the 10 s one
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(RayUnavailable, match="not asking again yet"):
            launcher.state("rayproc-someTask-r1-abcdef")
    assert time.monotonic() - started < 0.1
    now[0] = 2.5
    with pytest.raises(RayUnavailable) as exc:
        launcher.states()  # the backoff is over: Ray is asked again
    assert "not asking again yet" not in str(exc.value)


def test_the_runner_entrypoint_names_the_cluster_to_join_when_given() -> None:
    from jobs.launcher import runner_entrypoint

    args = dict(db_path="/d/rayproc.db", task_id="t", run_id="r", allowed_roots=["/a"], plugins=[])
    assert "--ray-address 10.0.0.1:6379" in runner_entrypoint(**args, ray_address="10.0.0.1:6379")
    assert "--ray-address" not in runner_entrypoint(**args)


def test_a_postgresql_url_reaches_the_driver_only_through_its_runtime_env() -> None:
    from jobs.launcher import DATABASE_URL_ENV, JobLauncher, database_env, runner_entrypoint

    url = "postgresql://rayproc:s3cret-pw@db.internal:5432/rayproc"
    entrypoint = runner_entrypoint(db_path=url, task_id="t", run_id="r", allowed_roots=["/a"], plugins=[])
    assert "s3cret-pw" not in entrypoint and f"--db-env {DATABASE_URL_ENV}" in entrypoint
    assert "--db " not in entrypoint
    assert runner_entrypoint(db_path="/d/rayproc.db", task_id="t", run_id="r", allowed_roots=[],
                             plugins=[]).count("--db /d/rayproc.db") == 1
    submitted: list[dict] = []

    class Client:
        def __init__(self, address, headers=None) -> None:
            pass

        def submit_job(self, **kwargs) -> str:
            submitted.append(kwargs)
            return kwargs["submission_id"]

    launcher = JobLauncher("http://x", client_factory=Client)
    launcher.submit(run_id="r", entrypoint=entrypoint, metadata={"k": "v"}, env_vars=database_env(url), anywhere=True)
    launcher.submit(run_id="r2", entrypoint="true", metadata={}, env_vars=database_env("/d/rayproc.db"))
    anywhere, on_head = submitted
    assert anywhere["runtime_env"]["env_vars"][DATABASE_URL_ENV] == url
    # A memory reservation lifts Ray's placement on the head without taking a share of any CPU.
    assert "s3cret-pw" not in repr(anywhere["metadata"]) and anywhere["entrypoint_memory"] > 0
    assert "entrypoint_num_cpus" not in anywhere
    assert DATABASE_URL_ENV not in on_head["runtime_env"]["env_vars"] and "entrypoint_memory" not in on_head


def test_a_driver_reads_its_database_url_from_the_named_variable(monkeypatch) -> None:
    from jobs.db import database_from

    monkeypatch.setenv("RAYPROC_DATABASE_URL", "postgresql://u:p@h/d")
    assert database_from(None, "RAYPROC_DATABASE_URL") == "postgresql://u:p@h/d"
    assert database_from("/d/rayproc.db", None) == "/d/rayproc.db"
    monkeypatch.delenv("RAYPROC_DATABASE_URL")
    with pytest.raises(SystemExit, match="RAYPROC_DATABASE_URL"):
        database_from(None, "RAYPROC_DATABASE_URL")
