"""Real small file systems for tests: a tmpfs mounted for one test (mounting needs root, which CI has)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Mounting a small tmpfs needs root (CI runs as root, so there these tests always run).
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@contextmanager
def small_tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (made if missing), unmounted afterwards."""
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a small tmpfs: {done.stderr.strip()}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, mode: str) -> None:
    """``mode`` is ``ro`` or ``rw``."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)
