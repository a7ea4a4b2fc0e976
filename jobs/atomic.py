"""Files that appear whole or not at all, and JSON Lines as every output file holds them.

A target is a server path or an object in a bucket (:class:`jobs.locations.ObjectPath`). A file is
written to a temporary name, fsynced and renamed over its path; a bucket has no rename, but one
PUT of a whole object (or one completed multipart upload) is atomic, so an object's content is
put together first (in memory, or in a local temporary file when it is streamed) and sent at once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from jobs.locations import Location, ObjectPath


class AtomicFile:
    """A file that appears whole at ``path`` or not at all: written to a temporary name,
    fsynced, then renamed over ``path`` (for an object: uploaded as one object); on an error
    the temporary file is removed and ``path`` is left as it was."""

    def __init__(self, path: Location) -> None:
        self.path = path
        self._tmp: Path | None = None
        self._fh: TextIO | None = None

    def __enter__(self) -> TextIO:
        if isinstance(self.path, ObjectPath):  # put together on local disk, then sent as one object
            fd, tmp = tempfile.mkstemp(prefix="rayproc-upload-", suffix=f"-{self.path.name}")
            self._tmp = Path(tmp)
            self._fh = os.fdopen(fd, "w", encoding="utf-8")
        else:
            self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            self._fh = open(self._tmp, "w", encoding="utf-8")
        return self._fh

    def __exit__(self, exc_type, exc, tb) -> None:
        fh, self._fh = self._fh, None
        try:
            if exc_type is None:
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            fh.close()
            if exc_type is not None:
                self._tmp.unlink(missing_ok=True)
        if exc_type is not None:
            return
        if isinstance(self.path, ObjectPath):
            try:
                self.path.upload(self._tmp)
            finally:
                self._tmp.unlink(missing_ok=True)
        else:
            os.replace(self._tmp, self.path)


def write_atomic(path: Location, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its lines, consumed as they come) atomically to ``path``."""
    if isinstance(text, str) and isinstance(path, ObjectPath):
        path.write_bytes(text.encode("utf-8"))  # already whole: one PUT, no temporary file
        return
    with AtomicFile(path) as fh:
        if isinstance(text, str):
            fh.write(text)
        else:
            fh.writelines(text)


def write_bytes_atomic(path: Location, data: bytes) -> None:
    """``data`` atomically at ``path``."""
    if isinstance(path, ObjectPath):
        path.write_bytes(data)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_line(record: dict) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def dump_records(records: Iterable[dict]) -> Iterator[str]:
    """One JSON line per record, as every output file holds them."""
    for record in records:
        yield json_line(record)
