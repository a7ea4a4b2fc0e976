"""The README's walk-through and the CLI section after it, pasted into bash as a newcomer would, against the live
test service: every step does what its comment says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Service

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 2000  # what the walk-through asks rayproc sample-images for


def _block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"```sh\n(.*?)```", text[text.index(heading):], flags=re.S).group(1)


def test_the_walk_through_then_the_cli_section_run_as_a_script(service: Service) -> None:
    here = service.root / "newcomer"
    here.mkdir()
    (here / ".venv").symlink_to(sys.prefix)  # the README calls .venv/bin/rayproc from the project directory
    script = (_block_after("## Walk-through") + "\necho '--- cli'\n"
              + _block_after("## Python client and command line"))
    env = {**os.environ, "RAYPROC_URL": service.url, "RAYPROC_DATA_DIR": str(service.data_dir)}
    done = subprocess.run(["bash", "-c", script], cwd=here, env=env, capture_output=True, text=True, timeout=480,
                          stdin=subprocess.DEVNULL)
    out = done.stdout
    walk, _, cli = out.partition("--- cli")

    task = re.search(r"^task (\S+)$", walk, flags=re.M).group(1)
    stopped = re.search(r"^status (\d) after (\d+) images$", walk, flags=re.M)
    assert stopped and stopped.group(1) == "4", out
    assert 0 < int(stopped.group(2)) < SAMPLES, "the stop must land while work remains, so the resume has some"
    resumed = re.search(r"^status (\d): (\d+) images in (.*)$", walk, flags=re.M)
    assert resumed and resumed.group(1) == "2" and int(resumed.group(2)) == SAMPLES, out
    assert len(eval(resumed.group(3), {})) == 2  # noqa: S307 (a Python list printed by the script): two runs
    counts = json.loads(walk[walk.index("{", resumed.end()):walk.index("}", resumed.end()) + 1])
    assert counts["blurry"] == SAMPLES // 5 and counts["dark"] > 0  # what sample-images promises
    listing = json.loads(walk[walk.rindex('{"count"'):].strip())
    assert [t["task_id"] for t in listing["tasks"]] == [task]

    # The CLI section, in the same shell: the same token, project and task.
    assert "[completed]" in cli and "items/s" in cli
    assert f"{task}  first-look  completed" in cli  # show
    assert "finished: completed" in cli  # logs
    assert (here / "report" / "report.html").exists()
    assert "already completed" in done.stderr  # stop and resume refuse a completed task, saying so
    assert re.search(r"import \d+: completed, 1 items, 0 failed", cli), cli
    assert "Traceback" not in done.stderr
