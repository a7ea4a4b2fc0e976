"""Small JPEG thumbnails of the items a report shows, read from a server folder or a bucket.

Bucket objects are read through :mod:`jobs.storage` (bounded concurrency, retries), the same way the
job's workers read them; every item the page needs is fetched in one batch.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable

from PIL import Image

from jobs import storage
from jobs.sources import item_location

THUMB = 96
JPEG_QUALITY = 70
#: Largest file the report decodes for a thumbnail; anything bigger is shown as "(not shown)".
MAX_BYTES = 64 * 1024 * 1024


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def thumbnail(data: bytes) -> str | None:
    """The image as a JPEG data URI at most ``THUMB`` px on its long side, or None if it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (THUMB, THUMB))  # JPEG: decode at a reduced scale
            img.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY)
            return data_uri(buf.getvalue(), "image/jpeg")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _read_file(path: str) -> bytes | None:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return None
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def thumbnails(root: str, keys: Iterable[str]) -> dict[str, str | None]:
    """``{key: data URI or None}`` for each item key under ``root`` (a folder or ``s3://bucket/prefix``)."""
    keys = list(dict.fromkeys(keys))
    locations = [item_location(root, key) for key in keys]
    on_bucket = [i for i, loc in enumerate(locations) if storage.is_object_uri(loc)]
    data: dict[int, bytes | None] = {}
    if on_bucket:
        uris = []
        for i in on_bucket:
            try:
                uris.append((i, storage.ObjectUri.parse(locations[i])))
            except ValueError:
                data[i] = None
        fetched = storage.fetch_many([u for _, u in uris])
        for (i, _), got in zip(uris, fetched, strict=True):
            data[i] = None if isinstance(got, storage.ObjectError) else got
    base = os.path.normpath(str(root)) + os.sep
    for i, loc in enumerate(locations):
        if i not in data:
            # Keys come from the task's own files; still, nothing outside the task's root is ever read.
            data[i] = _read_file(loc) if os.path.normpath(loc).startswith(base) else None
    return {key: (thumbnail(data[i]) if data[i] else None) for i, key in enumerate(keys)}
