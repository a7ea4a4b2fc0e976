"""A full or read-only data directory: every write answers 507 / 503 with the reason in the one error shape,
reads that can still read answer, and nothing is half-written.

The data directory is a real small file system (a tmpfs mounted for the test; mounting needs root, which CI
has) filled to the last byte or remounted read-only, so SQLite and the OS fail as they would in production.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from jobs.launcher import JobLauncher
from serve_app.accounts import Accounts
from serve_app.assembly import build_service
from serve_app.main import create_app
from serve_app.settings import Settings
from tests.support.filesystems import needs_root, remount, small_tmpfs
from tests.support.images import make_many

TASKS = "/v2/p1/processor-tasks"


class _AcceptingClient:
    """Ray's job client for a cluster that accepts every job and keeps it pending."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def submit_job(self, **kwargs) -> str:
        return kwargs["submission_id"]

    def stop_job(self, job_id: str) -> bool:
        return True

    def get_job_info(self, job_id: str):
        return SimpleNamespace(status=SimpleNamespace(value="PENDING"), message=None)

    def list_jobs(self) -> list:
        return []


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "mnt") as mnt:
        yield mnt


@pytest.fixture
def app(small_fs: Path, tmp_path: Path):
    settings = Settings(data_dir=small_fs / "data", allowed_roots=[str(tmp_path)], auth_enabled=False).resolved()
    service = build_service(settings, launcher=JobLauncher("http://ray", client_factory=_AcceptingClient))
    client = TestClient(create_app(service, Accounts(settings.db_path)), raise_server_exceptions=False)
    folder = tmp_path / "in"
    make_many(folder, 2)
    return client, settings, folder


def _create(client: TestClient, folder: Path, tmp_path: Path):
    return client.post(TASKS, json={"name": "t", "data_source": {"source": str(folder)},
                                    "template": {"id": "sys_data_analyse"},
                                    "work_path": {"type": "OBS", "path": str(tmp_path / "work")}})


def _fill(mnt: Path, db_path: Path) -> Path:
    """Fill the file system to the last byte. The WAL is emptied first, so the next write must grow a file."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def _assert_error(r, status: int, code: str, fragment: str) -> None:
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error_code", "error_msg"} and r.json()["error_code"] == code, r.text
    assert fragment in r.json()["error_msg"] and "Traceback" not in r.text


@needs_root
def test_a_full_data_directory_is_507_on_writes_and_reads_still_answer(app, small_fs: Path, tmp_path: Path) -> None:
    client, settings, folder = app
    first = _create(client, folder, tmp_path)
    assert first.status_code == 200, first.text
    task_id = first.json()["task_id"]
    filler = _fill(small_fs, settings.db_path)

    assert client.get(f"{TASKS}/{task_id}").json()["status"] == 0
    assert client.get(TASKS).json()["count"] == 1
    assert client.get("/healthz").status_code == 200
    _assert_error(_create(client, folder, tmp_path), 507, "insufficient_storage", "full")
    _assert_error(client.post(f"{TASKS}/{task_id}/stop"), 507, "insufficient_storage", "full")
    _assert_error(client.post("/api/projects/p1/import", json=[{"image": str(folder / "img_0000.png")}]),
                  507, "insufficient_storage", "full")
    # Nothing half-written: the task is as it was, no second task, no import.
    task = client.get(f"{TASKS}/{task_id}").json()
    assert task["status"] == 0 and task["stop_requested"] is False
    assert client.get(TASKS).json()["count"] == 1
    assert client.get("/api/projects/p1/imports/1/").status_code == 404

    filler.unlink()  # space again: the service needs no restart
    assert _create(client, folder, tmp_path).status_code == 200
    assert client.post(f"{TASKS}/{task_id}/stop").status_code == 200
    assert client.get(TASKS).json()["count"] == 2


@needs_root
def test_a_read_only_data_directory_is_503_on_writes_and_reads_still_answer(app, small_fs: Path,
                                                                             tmp_path: Path) -> None:
    client, settings, folder = app
    task_id = _create(client, folder, tmp_path).json()["task_id"]
    remount(small_fs, "ro")

    assert client.get(f"{TASKS}/{task_id}").json()["status"] == 0
    assert client.get(TASKS).json()["count"] == 1
    _assert_error(_create(client, folder, tmp_path), 503, "storage_unavailable", "cannot be written")
    _assert_error(client.post(f"{TASKS}/{task_id}/stop"), 503, "storage_unavailable", "cannot be written")

    remount(small_fs, "rw")
    assert client.get(TASKS).json()["count"] == 1  # the refused create left nothing
    assert _create(client, folder, tmp_path).status_code == 200
