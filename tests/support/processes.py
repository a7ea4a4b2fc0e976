"""Finding this machine's processes by their command line (Linux ``/proc``), for tests that kill or pause them."""

from __future__ import annotations

from pathlib import Path


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces; empty if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pids_with(*fragments: str) -> list[int]:
    """Every process whose command line holds all of ``fragments``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = cmdline(int(entry.name))
            if all(f in line for f in fragments):
                found.append(int(entry.name))
    return found
