"""Server-side paths: confinement to allowed roots and listing input items."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from operators.image_io import IMAGE_EXTENSIONS

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
#: Folder the job runner keeps its own state in, inside a task's output path.
STATE_DIR = ".rayproc"


class PathNotAllowed(ValueError):
    pass


def resolve_within(path: str, roots: Sequence[str], *, must_exist: bool = True) -> Path:
    """Resolve ``path`` (absolute, no URL scheme) and check it lies under one of ``roots``.

    Symlinks are resolved first, so a link that points outside a root is refused.
    """
    if not path or "\x00" in path:
        raise PathNotAllowed("path is empty or contains a NUL byte")
    if _SCHEME.match(path):
        raise PathNotAllowed(f"URL schemes are not enabled for server-side paths: {path!r}")
    if not os.path.isabs(path):
        raise PathNotAllowed(f"path must be absolute: {path!r}")
    if ".." in Path(path).parts:
        raise PathNotAllowed(f"path must not contain '..': {path!r}")
    resolved = Path(os.path.realpath(path))
    if not any(_is_under(resolved, Path(os.path.realpath(r))) for r in roots):
        raise PathNotAllowed(f"path {path!r} is outside the allowed roots")
    if must_exist and not resolved.exists():
        raise FileNotFoundError(f"path does not exist: {path!r}")
    return resolved


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def list_images(root: Path) -> tuple[Path, list[str]]:
    """The folder items are relative to, and the image files under ``root`` (recursively)
    as sorted relative POSIX paths. ``root`` may also be a single image file.

    Hidden files and folders (including rayproc's own state folder) are skipped.
    """
    if root.is_file():
        return root.parent, [root.name] if root.suffix.lower() in IMAGE_EXTENSIONS else []
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    return root, sorted(found)


def item_within(root: Path, rel: str, roots: Sequence[str]) -> bool:
    """True if the item (after resolving symlinks) stays inside the allowed roots."""
    real = Path(os.path.realpath(root / rel))
    return any(_is_under(real, Path(os.path.realpath(r))) for r in roots)
