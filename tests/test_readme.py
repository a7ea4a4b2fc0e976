"""The README's set-up commands are the ones CI and users really run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _sh_blocks()[1].strip()
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_run_command_starts_the_service() -> None:
    run_command = _sh_blocks()[0].strip()
    assert run_command.endswith("rayproc serve")
    assert "pip install -e ." in run_command
