"""Where a run's files live: the one module that names them.

Inside a task's output path::

    <output>/
      features.jsonl  failures.jsonl  result.json    the outputs every task writes
      <operator files>                                e.g. kept.jsonl, selected.jsonl, augmented.jsonl
      .rayproc/
        manifest.json                                 the frozen item list (root, items, chunk_size)
        parts/NNNNNN.jsonl                            one committed chunk's records
        gates/<run id>/                               a run's start gate (see jobs.scheduler.StartGate; kept
                                                      closed after the run, a stop mark and no more)
        runs/<run id>.json                            which node committed each chunk in that run

The output path is a server folder or a bucket prefix (``s3://bucket/prefix``): every
path here is then a :class:`pathlib.Path` or a :class:`jobs.locations.ObjectPath`, which
offer the same few methods, and writers go through :mod:`jobs.atomic` (a whole object
per write in a bucket). The runner, the assembly, the chaining of tasks and the service
all find these files through :class:`RunLayout`; nothing else spells a path inside an
output folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from jobs.locations import Location, ObjectPath, as_location

#: Folder the job runner keeps its own state in, inside a task's output path (hidden: never listed as input).
STATE_DIR = ".rayproc"
FEATURES_FILE = "features.jsonl"
FAILURES_FILE = "failures.jsonl"
RESULT_FILE = "result.json"
MANIFEST_FILE = "manifest.json"


class RunLayout:
    """The paths of one task's output folder or bucket prefix (nothing is created until a writer asks)."""

    def __init__(self, output_dir: str | Location) -> None:
        self.output_dir: Location = as_location(output_dir)

    @classmethod
    def for_task(cls, work_path: str | Location, task_id: str) -> RunLayout:
        """The layout of task ``task_id`` under the work path ``work_path`` (its output path's parent)."""
        return cls(as_location(work_path) / task_id)

    @property
    def in_bucket(self) -> bool:
        return isinstance(self.output_dir, ObjectPath)

    # ----- outputs -----------------------------------------------------------------------

    @property
    def features(self) -> Path:
        return self.output_dir / FEATURES_FILE

    @property
    def failures(self) -> Path:
        return self.output_dir / FAILURES_FILE

    @property
    def result(self) -> Path:
        return self.output_dir / RESULT_FILE

    def output(self, name: str) -> Path:
        """An operator's output file (``name`` as the operator declares it)."""
        return self.output_dir / name

    def read_output(self, name: str) -> str | None:
        """An output file's text (``name`` as :meth:`output` takes it), or None if it was not written."""
        try:
            return self.output(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @contextmanager
    def open_output(self, name: str) -> Iterator[TextIO]:
        """An output file for reading line by line, wherever it lives (FileNotFoundError if absent)."""
        with self.output(name).open(encoding="utf-8") as fh:
            yield fh

    def read_result(self) -> dict | None:
        """``result.json`` as written by the run's assembly, or None before it is."""
        text = self.read_output(RESULT_FILE)
        return None if text is None else json.loads(text)

    # ----- the runner's state ------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.output_dir / STATE_DIR

    @property
    def manifest(self) -> Path:
        return self.state_dir / MANIFEST_FILE

    @property
    def parts_dir(self) -> Path:
        return self.state_dir / "parts"

    def part(self, index: int) -> Path:
        return self.parts_dir / f"{index:06d}.jsonl"

    def gate(self, run_id: str) -> Path:
        return self.state_dir / "gates" / run_id

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def placement(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def run_log(self, run_id: str) -> Path:
        """The run's driver log, kept here once the run has ended (Ray's own record may then be deleted)."""
        return self.runs_dir / f"{run_id}.log"

    def read_log(self, run_id: str) -> str | None:
        """The run's kept driver log, or None if it was not kept (yet)."""
        try:
            return self.run_log(run_id).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def read_manifest(self) -> dict | None:
        """The frozen item list, or None before a run has written it."""
        try:
            text = self.manifest.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text)

    def input_root(self, default: str | Path) -> Location:
        """The folder or prefix the run's items are relative to (``default`` before the manifest exists)."""
        manifest = self.read_manifest()
        return as_location(manifest["root"] if manifest is not None else default)

    def placements(self) -> dict[str, str]:
        """Chunk index -> node id over every run so far (a later run's record wins)."""
        out: dict[str, str] = {}
        for path in sorted(self.runs_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            out.update(json.loads(path.read_text(encoding="utf-8")))
        return out
