"""Files that appear whole or not at all, and JSON Lines as every output file holds them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO


class AtomicFile:
    """A file that appears whole at ``path`` or not at all: written to a temporary name,
    fsynced, then renamed over ``path``; on an error the temporary file is removed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._fh: TextIO | None = None

    def __enter__(self) -> TextIO:
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
        if exc_type is None:
            os.replace(self._tmp, self.path)


def write_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (or its lines, consumed as they come) atomically to ``path``."""
    with AtomicFile(path) as fh:
        if isinstance(text, str):
            fh.write(text)
        else:
            fh.writelines(text)


def json_line(record: dict) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def dump_records(records: Iterable[dict]) -> Iterator[str]:
    """One JSON line per record, as every output file holds them."""
    for record in records:
        yield json_line(record)
