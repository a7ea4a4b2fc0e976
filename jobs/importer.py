"""The import runner: the entrypoint of every import's Ray job.

    python -m jobs.importer --db DB --import-id N [--allowed-root R]...

Reads the import's payload (JSON Lines of items, or a folder spec), validates,
hashes and records every item in batches, and always leaves a final status.
A bad item is recorded as a failure with its reason; it never fails the import.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from jobs import storage
from jobs.datasets import CheckedItem, Datasets
from jobs.db import database_from
from jobs.sources import PathNotAllowed, list_images, list_object_images, resolve_location, resolve_within

log = logging.getLogger("rayproc.importer")

BATCH = 500
#: Keys of a Label Studio task that are not its data.
_NOT_DATA = ("annotations", "predictions", "id", "meta")


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalize(raw: dict) -> tuple[dict, list, list]:
    """Label Studio accepts ``{"data": {...}, "annotations": [...]}`` or the data fields alone."""
    if isinstance(raw.get("data"), dict):
        data = raw["data"]
    else:
        data = {k: v for k, v in raw.items() if k not in _NOT_DATA}
    annotations = raw.get("annotations") if isinstance(raw.get("annotations"), list) else []
    predictions = raw.get("predictions") if isinstance(raw.get("predictions"), list) else []
    return data, annotations, predictions


def preannotations(data: dict, fields: Sequence[str]) -> list[dict]:
    """Label Studio's ``preannotated_from_fields``: one prediction per named field of the item's data.

    Without a labeling config, Label Studio reads a plain value as a choice on ``text``; a dict value is
    taken as the prediction's value as it is. The field stays in the data. Raises ValueError when the
    item lacks a field."""
    out = []
    for name in fields:
        if name not in data:
            raise ValueError(f"preannotated field {name!r} is not in the item's data")
        value = data[name]
        if value is None:
            continue
        if not isinstance(value, dict):
            value = {"choices": value if isinstance(value, list) else [value]}
        out.append({"result": [{"from_name": name, "to_name": "text", "type": "choices", "value": value}],
                    "score": 1.0, "model_version": "preannotated"})
    return out


def check_item(raw: dict, roots: Sequence[str], preannotate: Sequence[str] = ()) -> CheckedItem:
    """Validate and hash one item. Raises ValueError with the reason for a failed item."""
    data, annotations, predictions = normalize(raw)
    if not data:
        raise ValueError("the item has no data")
    if preannotate:
        predictions = [*predictions, *preannotations(data, preannotate)]
    image = data.get("image")
    image_path = None
    digest = _digest(data)
    if image is not None:
        if not isinstance(image, str) or not image:
            raise ValueError("'image' must be a path")
        if storage.is_object_uri(image):
            image_path, digest = _check_object(image, roots)
            return CheckedItem(data, image_path, digest, annotations, predictions)
        try:
            resolved = resolve_within(image, roots)
        except PathNotAllowed as exc:
            raise ValueError(f"image: {exc}") from None
        except FileNotFoundError:
            raise ValueError(f"image: file not found: {image!r}") from None
        if not resolved.is_file():
            raise ValueError(f"image: not a file: {image!r}")
        image_path = str(resolved)
        digest = _file_digest(resolved)
    return CheckedItem(data, image_path, digest, annotations, predictions)


def _check_object(image: str, roots: Sequence[str]) -> tuple[str, str]:
    """An image in a bucket: its normalised URI and content digest. Raises ValueError with the reason."""
    try:
        uri = storage.uri_within(image, roots)
        data = storage.read_bytes(uri)
    except ValueError as exc:
        raise ValueError(f"image: {exc}") from None
    except storage.ObjectError as exc:
        raise ValueError(f"image: {exc.code}: {exc.message}: {image!r}") from None
    return str(uri), hashlib.sha256(data).hexdigest()


def _payload(path: Path, roots: Sequence[str]) -> Iterator[dict]:
    """Items of a payload: JSON Lines of objects, or a folder spec that expands to image items."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
        spec = json.loads(first) if first.strip() else {}
        if isinstance(spec, dict) and spec.get("__folder__"):
            yield from _folder_items(spec, roots)
            return
        if first.strip():
            yield spec
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _folder_items(spec: dict, roots: Sequence[str]) -> Iterator[dict]:
    if storage.is_object_uri(spec["__folder__"]):
        yield from _prefix_items(spec, roots)
        return
    folder = resolve_within(spec["__folder__"], roots)
    if spec.get("recursive", True):
        root, names = list_images(folder)
    else:
        root, names = folder, sorted(n for n in os.listdir(folder) if (folder / n).is_file()
                                     and list_images(folder / n)[1])
    sheet = _read_sheet(spec.get("metadata_sheet"), roots)
    for name in names:
        item = {"image": str(Path(root, name))}
        extra = sheet.get(Path(name).name) or sheet.get(name)
        if extra:
            item.update({k: v for k, v in extra.items() if k != "file_name" and v not in (None, "")})
        yield item


def _prefix_items(spec: dict, roots: Sequence[str]) -> Iterator[dict]:
    """The images under a bucket prefix (checked against the roots again here), as absolute URIs."""
    base = storage.ObjectUri.parse(resolve_location(spec["__folder__"], roots, must_exist=False))
    sheet = _read_sheet(spec.get("metadata_sheet"), roots)
    for name in list_object_images(base):
        if not spec.get("recursive", True) and "/" in name:
            continue
        item = {"image": str(base.join(name))}
        extra = sheet.get(name.rsplit("/", 1)[-1]) or sheet.get(name)
        if extra:
            item.update({k: v for k, v in extra.items() if k != "file_name" and v not in (None, "")})
        yield item


def _read_sheet(path: str | None, roots: Sequence[str]) -> dict[str, dict]:
    """A CSV with a ``file_name`` column: per-file metadata joined by file name."""
    if not path:
        return {}
    with open(resolve_within(path, roots), newline="", encoding="utf-8-sig") as fh:
        return {row["file_name"]: row for row in csv.DictReader(fh) if row.get("file_name")}


def run(db: str, import_id: int, roots: Sequence[str]) -> str:
    datasets = Datasets(db)
    if not datasets.start_import(import_id):
        log.warning("import %s is not waiting to run: nothing to do", import_id)
        return "skipped"
    record = datasets.get_import(import_id)
    preannotate = record["preannotated_from_fields"] or ()
    batch: list[CheckedItem] = []
    failures: list[dict] = []
    position = 0
    try:
        for position, raw in enumerate(_payload(Path(record["payload_path"]), roots)):
            try:
                if not isinstance(raw, dict):
                    raise ValueError("the item is not a JSON object")
                batch.append(check_item(raw, roots, preannotate))
            except ValueError as exc:
                failures.append({"index": position, "reason": str(exc)})
            if len(batch) + len(failures) >= BATCH:
                datasets.record_items(import_id, record["dataset_id"], batch, failures)
                batch, failures = [], []
        datasets.record_items(import_id, record["dataset_id"], batch, failures)
    except Exception as exc:  # the payload itself is unreadable: the import fails, with the reason kept
        traceback.print_exc()
        datasets.finish_import(import_id, "failed", f"{type(exc).__name__}: {exc} (at item {position})")
        return "failed"
    datasets.finish_import(import_id, "completed")
    return "completed"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m jobs.importer")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="the SQLite file")
    where.add_argument("--db-env", help="the environment variable holding the PostgreSQL URL")
    p.add_argument("--import-id", type=int, required=True)
    p.add_argument("--allowed-root", action="append", default=[])
    args = p.parse_args(argv)
    outcome = run(database_from(args.db, args.db_env), args.import_id, args.allowed_root)
    log.info("import %s: %s", args.import_id, outcome)
    return 0 if outcome != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
