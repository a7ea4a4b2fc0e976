"""Statuses and task types. ``is_terminal`` is a method everywhere: a bare ``status.is_terminal`` (a bound method,
always truthy) would call every status terminal, so no code may read it without calling it."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from jobs.launcher import RayJobState
from rayproc_contract.status import TaskStatus, TaskType, TaskTypeName

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("serve_app", "jobs", "operators", "rayproc_client", "rayproc_contract", "tests", "benchmarks")


def bare_is_terminal(source: str) -> list[int]:
    """Lines where ``<x>.is_terminal`` is read without being called."""
    tree = ast.parse(source)
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "is_terminal" and id(node) not in called]


def test_the_terminal_statuses() -> None:
    assert [s for s in TaskStatus if s.is_terminal()] == [TaskStatus.COMPLETED, TaskStatus.FAILED,
                                                          TaskStatus.STOPPED]
    assert [int(s) for s in TaskStatus] == [0, 1, 2, 3, 4]  # ModelArts' codes
    assert TaskStatus.RUNNING.label == "running"


@pytest.mark.parametrize("owner", [TaskStatus, RayJobState], ids=lambda c: c.__name__)
def test_is_terminal_is_a_plain_method(owner: type) -> None:
    assert inspect.isfunction(inspect.getattr_static(owner, "is_terminal"))


def test_ray_job_state_is_terminal() -> None:
    assert [RayJobState(s).is_terminal() for s in ("PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED")] == [
        False, False, True, True, True]


def test_the_scan_finds_a_bare_is_terminal() -> None:
    source = "if state.is_terminal:\n    pass\nok = status.is_terminal()\nflag = not rec.status.is_terminal\n"
    assert bare_is_terminal(source) == [1, 4]


def test_no_code_reads_is_terminal_without_calling_it() -> None:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            lines = bare_is_terminal(path.read_text(encoding="utf-8"))
            if lines:
                found[str(path.relative_to(REPO))] = lines
    assert not found, f"is_terminal read without a call (always truthy): {found}"


def test_the_task_type_names_are_the_enums_values() -> None:
    assert typing.get_args(TaskTypeName) == tuple(t.value for t in TaskType)
    assert [t.value for t in TaskType] == ["sys_data_analyse", "sys_data_cleaning", "sys_data_augmentation",
                                           "sys_data_validation", "sys_data_selection"]
