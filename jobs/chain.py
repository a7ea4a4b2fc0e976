"""A completed task as the source of the next one (``{"type": "TASK", "source": <task id>}``).

Which items a task passes on is its operators' to say (``Operator.passes_on``
names the file, whose rows are manifest lines: see ``operators.pass_on``); this
module only finds that file and freezes it as a manifest with absolute image
paths, so the next task reads exactly what the upstream task wrote, even if the
upstream output changes later. A task that passes nothing on hands on the items
it read.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from jobs.layout import RunLayout
from jobs.locations import Location, is_object_uri, normalise
from jobs.sources import item_location
from jobs.store import TaskRecord
from operators.pass_on import IMAGE, pass_on_row
from operators.pipeline import BOXES, ITEM, LABEL
from operators.registry import OperatorRegistry, UnknownOperatorError


def pass_on_file(template: dict, registry: OperatorRegistry) -> str | None:
    """The file a task with ``template`` passes its items on in: the last of its operators that names one."""
    names = []
    for spec in template.get("operator_params") or []:
        try:
            cls = registry.get(spec["id"])
        except UnknownOperatorError:  # a plugin no longer loaded: it cannot have passed anything on
            continue
        if cls.passes_on is not None:
            names.append(cls.passes_on)
    return names[-1] if names else None


def chain_source(upstream: TaskRecord, folder: Path, registry: OperatorRegistry) -> Path | str:
    """The source a task reading ``upstream`` gets: a manifest written under ``folder``, or the
    upstream's own input when it passes nothing on. The upstream's output may be in a bucket: the
    manifest then names its images by their ``s3://`` URIs."""
    layout = RunLayout(upstream.output_dir)
    name = pass_on_file(upstream.template, registry)
    if name is None or not layout.output(name).exists():
        return upstream.input_root if is_object_uri(upstream.input_root) else Path(upstream.input_root)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"task-{upstream.task_id}-{secrets.token_hex(4)}.jsonl"
    root = str(layout.input_root(upstream.input_root))
    with layout.open_output(name) as src, open(target, "w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            image = _image(row, layout.output_dir, root)
            # A row naming no image is copied as it is: the next run reports it as a bad manifest line.
            out = row if image is None else pass_on_row(image, row.get(LABEL), row.get(BOXES))
            dst.write(json.dumps(out, ensure_ascii=False) + "\n")
    return target


def _image(row: dict, output_dir: Location, root: str) -> str | None:
    """The absolute path (or object URI) of the image a pass-on row names."""
    if isinstance(row.get(IMAGE), str):
        return _absolute(str(output_dir), row[IMAGE])
    if isinstance(row.get(ITEM), str):  # a row written before rows named their image: an input item
        return _absolute(root, row[ITEM])
    return None


def _absolute(base: str, name: str) -> str:
    """``name`` under ``base`` (an absolute ``name`` stays itself), for a folder or a bucket prefix."""
    if is_object_uri(name):
        return normalise(name)
    if is_object_uri(base) and not os.path.isabs(name):
        return item_location(base, name)
    return os.path.normpath(os.path.join(base, name))
