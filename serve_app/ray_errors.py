"""Translating the job launcher's errors into API errors, for every route that calls Ray."""

from __future__ import annotations

from jobs import launcher as L
from serve_app import errors as E


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
