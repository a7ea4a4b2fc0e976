"""The client's modules import one another without a cycle, counting imports made only for type checking."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rayproc_client"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, modules: set[str]) -> set[str]:
    """Which of ``modules`` the source imports, wherever the import statement is (``if TYPE_CHECKING:``,
    inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & modules


def module_graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.glob("*.py")}
    return {name: imports_of(path.read_text(encoding="utf-8"), set(paths)) - {name} for name, path in paths.items()}


def test_the_client_module_graph_has_no_cycle() -> None:
    graph = module_graph()
    assert "rayproc_client._core" in graph and graph["rayproc_client.client"] >= {"rayproc_client._core"}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in rayproc_client: {' -> '.join(exc.args[1])}")
    assert set(order) == set(graph)


def test_the_check_sees_an_import_made_only_for_type_checking() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rayproc_client.client import Client\n"
    assert imports_of(source, {"rayproc_client.client"}) == {"rayproc_client.client"}
    cyclic = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(CycleError):
        list(TopologicalSorter(cyclic).static_order())
