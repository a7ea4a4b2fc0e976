"""The user's CLI commands, driven for real against the running service."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from serve_app.cli import main
from tests.conftest import Service
from tests.support.images import make_many

pytestmark = pytest.mark.ray


@pytest.fixture
def run(service: Service):
    token = service.client.headers["Authorization"].removeprefix("Token ")
    env = {"RAYPROC_URL": service.url, "RAYPROC_TOKEN": token, "RAYPROC_PROJECT": "p1"}

    def invoke(*args: str) -> tuple[int, str]:
        """Exit code and standard output (Ray's own log lines go to this process's stderr)."""
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        return result.exit_code, result.stdout + ("\n" + result.stderr if result.exit_code else "")

    return invoke


def test_submit_wait_show_list_logs_report(run, service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 12)
    code, out = run("submit", "sys_data_analyse", str(folder), "--name", "cli-task", "--chunk-size", "4", "--wait",
                    "--json")
    assert code == 0, out
    task = json.loads(out[out.index("{"):])
    assert task["status"] == 2 and task["processed_count"] == 12
    task_id = task["task_id"]

    code, out = run("show", task_id)
    assert code == 0 and task_id in out and "completed" in out and "processed 12" in out
    code, out = run("list", "--json", "--name", "cli-task")
    assert code == 0 and [t["task_id"] for t in json.loads(out)] == [task_id]
    code, out = run("logs", task_id)
    assert code == 0 and "finished: completed" in out
    code, out = run("report", task_id, "--out", str(tmp_path / "r"))
    assert code == 0 and (tmp_path / "r" / "report.html").exists()
    assert (tmp_path / "r" / "brightness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The saved page's links to the output files point at the service's files route.
    saved = (tmp_path / "r" / "report.html").read_text()
    assert f"href='{service.url}/v2/p1/processor-tasks/{task_id}/files/features.jsonl'" in saved


def test_human_progress_and_exit_codes(run, service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 6)
    code, out = run("submit", "sys_data_analyse", str(folder), "--wait")
    assert code == 0 and "items/s" in out and "completed" in out
    assert "[completed]" in out  # the progress line's status, printed as text rather than taken for markup
    empty = folder / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    code, out = run("submit", "sys_data_analyse", str(empty), "--wait")
    assert code == 1 and "failed" in out and "no_items" in out
    bad = tmp_path / "params.json"
    bad.write_text("{not json")
    code, out = run("submit", "sys_data_analyse", str(folder), "--params", str(bad))
    assert code == 2 and "not JSON" in out
    code, out = run("submit", "sys_data_analyse", "/etc")
    assert code == 5 and "outside the allowed roots" in out
    code, out = run("stop", "job 1")
    assert code == 5 and "Invalid task ID format" in out
    code, out = run("list", "--project", "no-such-project")
    assert code == 5 and "not found" in out and "project used: 'no-such-project', from --project" in out


def test_on_a_terminal_the_live_progress_shows_the_status(service: Service, folder: Path) -> None:
    """Rich draws the bar on a terminal; its status must be text, not taken for markup and swallowed."""
    make_many(folder, 3)
    token = service.client.headers["Authorization"].removeprefix("Token ")
    env = {**os.environ, "RAYPROC_URL": service.url, "RAYPROC_TOKEN": token, "RAYPROC_PROJECT": "p1",
           "COLUMNS": "120", "TERM": "xterm"}
    command = [sys.executable, "-m", "serve_app.cli", "submit", "sys_data_analyse", str(folder), "--wait",
               "--name", "on-a-tty"]
    main_fd, child_fd = pty.openpty()
    child = subprocess.Popen(command, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, close_fds=True)
    os.close(child_fd)
    seen = b""
    while True:  # read until the child closes the terminal
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main_fd)
    assert child.wait(timeout=120) == 0, seen.decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))  # without terminal escapes
    assert "[completed]" in text and "3/3" in text and "on-a-tty" in text


def test_stop_then_resume(run, service: Service, folder: Path, tmp_path: Path) -> None:
    make_many(folder, 2)
    code, out = run("submit", "sys_data_analyse", str(folder), "--wait", "--json")
    task_id = json.loads(out[out.index("{"):])["task_id"]
    code, out = run("stop", task_id)
    assert code == 5 and "already completed" in out
    code, out = run("resume", task_id)
    assert code == 5 and "only a stopped or failed task" in out


def test_import_a_file(run, service: Service, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n')
    code, out = run("import", str(items), "--dataset", "cli", "--wait")
    assert code == 0 and "completed, 3 items, 0 failed" in out, out
    code, out = run("import", str(tmp_path / "missing.jsonl"))
    assert code == 2
