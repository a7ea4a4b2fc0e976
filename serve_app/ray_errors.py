"""Translating the job launcher's errors into API errors, for every route that calls Ray, and Ray's account of
a job that ended into words fit for a task's users."""

from __future__ import annotations

import re

from jobs import launcher as L
from serve_app import errors as E

#: Ray's account of a failed job may go on with the driver's last log lines, which can hold its command line.
_EXIT_CODE = re.compile(r"exit code (-?\d+)")
_PATH = re.compile(r"(?:[A-Za-z]:)?/[^\s'\"]+")


def ray_reason(message: str | None) -> str:
    """What a task's users are told of Ray's message about a job that ended: its exit code, or its first
    sentence with file paths (the service's interpreter, its database) left out. The whole message goes to
    the service log, under the run id."""
    if not message:
        return ""
    code = _EXIT_CODE.search(message)
    if code:
        return f"its driver exited with code {code.group(1)}"
    first = message.strip().splitlines()[0].split(", last available logs")[0]
    return _PATH.sub("<path>", first)[:300]


class ray_errors:
    """Translate the launcher's errors into API errors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, L.RayUnavailable):
            raise E.RayUnavailable(f"the Ray cluster is unreachable: {exc}") from exc
        if isinstance(exc, L.RayJobError):
            raise E.InternalError(f"the Ray Jobs API failed: {exc}") from exc
        return False


def ray_reachability(launcher: L.JobLauncher) -> str:
    """``"reachable"`` if the Ray Jobs API answers a listing now, else ``"unreachable"`` (for health checks,
    which report the cluster rather than fail with it)."""
    try:
        launcher.states()
    except Exception:
        return "unreachable"
    return "reachable"
