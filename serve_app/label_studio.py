"""rayproc's projects and items in Label Studio's shapes, and Label Studio's page rules.

The shapes follow label-studio-sdk's response models (``AllRolesProjectList`` /
``LseProjectResponse`` for a project, ``LseTask`` for a task, ``PaginatedRoleBasedTaskList``
and ``PaginatedAllRolesProjectListList`` for pages), so the SDK's own pagers read them.
A task is an imported item; its ``id`` is the item id. One deliberate difference: a
project's ``id`` is rayproc's project id, a string (``"demo"``): the SDK passes ids
through without checking their type.
"""

from __future__ import annotations

import math

from starlette.datastructures import URL

from serve_app import errors as E
from serve_app.imports import iso_time

TASK_PAGE_SIZE = 100  # Label Studio's TaskPagination
MAX_TASK_PAGE_SIZE = 1000
PROJECT_PAGE_SIZE = 30  # Label Studio's ProjectListPagination
MAX_PROJECT_PAGE_SIZE = 100


def check_page(page: int, page_size: int, total: int) -> None:
    """Label Studio (Django REST's paginator) answers 404 for a page past the last; the SDK's
    pagers stop there. The first page always exists, empty or not."""
    last = max(1, math.ceil(total / page_size))
    if page > last:
        raise E.NotFound(f"Invalid page: {page} (there are {last} pages of {page_size})")


def page_links(url: URL, page: int, page_size: int, total: int) -> tuple[str | None, str | None]:
    """Absolute ``next`` and ``previous`` links, as Label Studio's project pages carry them."""
    last = max(1, math.ceil(total / page_size))
    nxt = str(url.include_query_params(page=page + 1, page_size=page_size)) if page < last else None
    prev = str(url.include_query_params(page=page - 1, page_size=page_size)) if page > 1 else None
    return nxt, prev


def project_view(project: dict, counts: dict | None) -> dict:
    """A project as Label Studio lists it; ``counts`` from ``Datasets.project_counts``."""
    counts = counts or {}
    annotated = counts.get("annotated", 0)
    return {
        "id": project["project_id"],
        "title": project["name"] or project["project_id"],
        "description": "",
        "task_number": counts.get("tasks", 0),
        "total_annotations_number": counts.get("annotations", 0),
        "total_predictions_number": counts.get("predictions", 0),
        "num_tasks_with_annotations": annotated,
        # Label Studio counts a task finished once it has its one annotation (maximum_annotations = 1).
        "finished_task_number": annotated,
        "maximum_annotations": 1,
        "role": project.get("role"),
    }


def task_view(item: dict, *, with_labels: bool = True) -> dict:
    """An imported item as a Label Studio task; ``fields=task_only`` leaves out the labels."""
    created = iso_time(item["create_time"])
    view = {
        "id": item["id"],
        "data": item["data"],
        "project": item["project_id"],
        "created_at": created,
        "updated_at": created,  # items are immutable once committed
        "total_annotations": item["annotation_count"],
        "total_predictions": item["prediction_count"],
        "is_labeled": item["annotation_count"] > 0,
        "meta": {},
        "dataset_id": item["dataset_id"],
        "import_id": item["import_id"],
        "image": item["image"],
        "digest": item["digest"],
    }
    if with_labels:
        view["annotations"] = item["annotations"]
        view["predictions"] = item["predictions"]
    return view
