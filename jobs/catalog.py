"""Turning a request's ``template`` into validated operator specs, and specs into a pipeline.

Used twice: by the API before any Ray job exists (so bad params are a 400 in
milliseconds) and by the job runner (which trusts nothing it reads from disk).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from operators.pipeline import Pipeline
from operators.registry import DEFAULT_OPERATORS, OperatorRegistry, UnknownOperatorError
from rayproc_contract.status import TaskType


class CatalogError(ValueError):
    """A template or operator param is invalid. ``field`` is the dotted request path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OperatorSpec:
    id: str
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "params": self.params}


_loaded_plugins: set[tuple[int, str]] = set()


def load_plugins(modules: Iterable[str], registry: OperatorRegistry) -> None:
    """Import each plugin module once and let it register operators.

    A plugin module defines ``register_operators(registry)``; that is how a team
    adds its own operators without forking.
    """
    for name in modules:
        key = (id(registry), name)
        if key in _loaded_plugins:
            continue
        module = importlib.import_module(name)
        register = getattr(module, "register_operators", None)
        if register is None:
            raise ImportError(f"operator plugin {name!r} has no register_operators(registry) function")
        register(registry)
        _loaded_plugins.add(key)


def parse_task_type(template_id: str) -> TaskType:
    try:
        return TaskType(template_id)
    except ValueError:
        valid = ", ".join(t.value for t in TaskType)
        raise CatalogError("template.id", f"unknown template {template_id!r}; valid templates: {valid}") from None


def resolve_operators(task_type: TaskType, operator_params: Sequence[dict[str, Any]],
                      registry: OperatorRegistry) -> list[OperatorSpec]:
    """Validate each operator's params against its ``Params`` model; fill defaults."""
    available = registry.names(task_type)
    if not available:
        raise CatalogError("template.id", f"template {task_type.value!r} has no operators in this release")
    requested = list(operator_params) or [{"id": name, "params": {}} for name in DEFAULT_OPERATORS.get(task_type, [])]
    specs = []
    for i, op in enumerate(requested):
        where = f"template.operator_params[{i}]"
        try:
            cls = registry.get(op["id"], task_type)
        except UnknownOperatorError as exc:
            raise CatalogError(f"{where}.id", str(exc)) from None
        try:
            params = cls.Params.model_validate(op.get("params") or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise CatalogError(f"{where}.params.{loc}" if loc else f"{where}.params", first["msg"]) from None
        for required in cls.requires:  # e.g. cleaning rules need the features they test
            if all(s.id != required for s in specs):
                specs.append(OperatorSpec(required, registry.get(required).Params().model_dump(mode="json")))
        specs.append(OperatorSpec(cls.name, params.model_dump(mode="json")))
    return specs


def describe_templates(registry: OperatorRegistry) -> list[dict[str, Any]]:
    """The five templates with their operators, descriptions and params as JSON Schema."""
    out = []
    for task_type in TaskType:
        operators = []
        for cls in registry.for_type(task_type):
            operators.append({
                "id": cls.name,
                "description": inspect.cleandoc(cls.__doc__ or ""),
                "requires": list(cls.requires),
                "params_schema": cls.Params.model_json_schema(),
            })
        out.append({
            "template_id": task_type.value,
            "label_en": TEMPLATE_LABELS[task_type][0],
            "label_zh": TEMPLATE_LABELS[task_type][1],
            "default_operators": DEFAULT_OPERATORS.get(task_type, []),
            "operators": operators,
        })
    return out


TEMPLATE_LABELS = {
    TaskType.ANALYSE: ("Feature analysis", "特征分析"),
    TaskType.CLEANING: ("Data cleaning", "数据清洗"),
    TaskType.AUGMENTATION: ("Data augmentation", "数据增强"),
    TaskType.VALIDATION: ("Data validation", "数据校验"),
    TaskType.SELECTION: ("Data selection", "数据选择"),
}


def build_pipeline(specs: Sequence[OperatorSpec | dict], registry: OperatorRegistry, **kwargs: Any) -> Pipeline:
    ops = []
    for spec in specs:
        spec = spec if isinstance(spec, OperatorSpec) else OperatorSpec(spec["id"], spec.get("params", {}))
        cls = registry.get(spec.id)
        ops.append(cls(cls.Params.model_validate(spec.params)))
    return Pipeline(ops, **kwargs)
