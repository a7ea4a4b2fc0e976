"""Pure image-processing operators: numpy, Pillow and OpenCV, no Ray, no web framework.

Each operator is a small class with a user-facing docstring, a pydantic ``Params``
model and one batch method. ``jobs/`` decides where and how they run.
"""

from operators.base import Operator, OperatorError, TaskType
from operators.registry import OperatorRegistry, default_registry

__all__ = ["Operator", "OperatorError", "OperatorRegistry", "TaskType", "default_registry"]
