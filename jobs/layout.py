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

The runner, the assembly, the chaining of tasks and the service all find these
files through :class:`RunLayout`; nothing else spells a path inside an output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Folder the job runner keeps its own state in, inside a task's output path (hidden: never listed as input).
STATE_DIR = ".rayproc"
FEATURES_FILE = "features.jsonl"
FAILURES_FILE = "failures.jsonl"
RESULT_FILE = "result.json"
MANIFEST_FILE = "manifest.json"


class RunLayout:
    """The paths of one task's output folder (nothing is created until a writer asks for it)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

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

    def read_manifest(self) -> dict | None:
        """The frozen item list, or None before a run has written it."""
        if not self.manifest.exists():
            return None
        return json.loads(self.manifest.read_text(encoding="utf-8"))

    def input_root(self, default: str | Path) -> Path:
        """The folder the run's items are relative to (``default`` before the manifest exists)."""
        manifest = self.read_manifest()
        return Path(manifest["root"]) if manifest is not None else Path(default)

    def placements(self) -> dict[str, str]:
        """Chunk index -> node id over every run so far (a later run's record wins)."""
        out: dict[str, str] = {}
        for path in sorted(self.runs_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            out.update(json.loads(path.read_text(encoding="utf-8")))
        return out
