"""Sources: confinement to allowed roots and listing input items, from server paths or buckets.

A location is a server path or an object URI (``s3://bucket/prefix``, see :mod:`jobs.storage`);
:func:`resolve_location` confines either kind, :func:`list_items` lists either kind.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from jobs import storage
from operators.annotations import BAD_ANNOTATION
from operators.image_io import IMAGE_EXTENSIONS
from operators.pass_on import IMAGE

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


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
    if not any(_is_under(str(resolved), _real_root(r)) for r in storage.split_roots(roots)[0]):
        raise PathNotAllowed(f"path {path!r} is outside the allowed roots")
    if must_exist and not resolved.exists():
        raise FileNotFoundError(f"path does not exist: {path!r}")
    return resolved


def resolve_location(location: str, roots: Sequence[str], *, must_exist: bool = True) -> str:
    """A server path resolved as :func:`resolve_within` does, or an object URI normalised to ``s3://``
    and checked to lie under one of the ``s3://bucket[/prefix]`` entries of ``roots`` (on a ``/``
    boundary: ``s3://b/data`` does not allow ``s3://b/database``).

    Raises :class:`PathNotAllowed`, FileNotFoundError, or :class:`jobs.storage.ObjectError` when the
    store cannot be asked.
    """
    if not storage.is_object_uri(location):
        return str(resolve_within(location, roots, must_exist=must_exist))
    try:
        uri = storage.uri_within(location, roots)
    except ValueError as exc:
        raise PathNotAllowed(str(exc)) from None
    if must_exist and not storage.exists(uri):
        raise FileNotFoundError(f"nothing at {location!r}")
    return str(uri)


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    """Roots are resolved once per process: they are configuration, checked for every item."""
    return os.path.realpath(root)


def _is_under(path: str, root: str) -> bool:
    """Both resolved: ``path`` is ``root`` or lies below it (a sibling that shares a prefix does not)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


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


MANIFEST_SUFFIXES = frozenset({".jsonl", ".manifest"})
#: Keys of a manifest line: the image path (``image``, or ModelArts' ``source``), and optional annotations.
MANIFEST_IMAGE_KEYS = (IMAGE, "source")


def list_items(source: Path | str) -> tuple[Path | str, list[str | dict]]:
    """Items of a source: a folder or image file (images only), or a JSON Lines manifest whose lines
    name an image and may carry a ``label`` and ``boxes`` (the shape of ``operators.pass_on``).
    Relative image paths in a manifest are relative to the manifest's folder. A line that names no
    image, or whose ``boxes`` is not a list, becomes an item that fails with its reason, so nothing
    in the manifest goes unreported and no line fails more than its own item.

    ``source`` may be an object URI: a prefix is listed as a folder, an object named ``*.jsonl`` is
    read as a manifest; items are then keys relative to the prefix (or absolute URIs in a manifest)."""
    if storage.is_object_uri(str(source)):
        return _list_objects(storage.ObjectUri.parse(str(source)))
    source = Path(source)
    if source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES:
        return source.parent, _read_manifest(source)
    return list_images(source)


def _list_objects(uri: storage.ObjectUri) -> tuple[str, list[str | dict]]:
    name = PurePosixPath(uri.key)
    if name.suffix.lower() in MANIFEST_SUFFIXES and storage.is_object(uri):
        text = storage.read_bytes(uri).decode("utf-8", errors="replace")
        return str(uri).rsplit("/", 1)[0], _parse_manifest(name.name, text.splitlines())
    if name.suffix.lower() in IMAGE_EXTENSIONS and storage.is_object(uri):
        return str(uri).rsplit("/", 1)[0], [name.name]
    return str(uri), list_object_images(uri)


def list_object_images(prefix: storage.ObjectUri) -> list[str]:
    """The image objects under ``prefix`` as sorted relative keys, skipping hidden names as :func:`list_images` does."""
    return [k for k in storage.list_keys(prefix)
            if not any(part.startswith(".") for part in PurePosixPath(k).parts)
            and PurePosixPath(k).suffix.lower() in IMAGE_EXTENSIONS]


def _read_manifest(path: Path) -> list[str | dict]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return _parse_manifest(path.name, fh)


def _parse_manifest(name: str, lines) -> list[str | dict]:
    items: list[str | dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append({"key": f"{name}:{number}", "error": f"line {number} is not JSON: {exc.msg}"})
            continue
        image = next((row.get(k) for k in MANIFEST_IMAGE_KEYS if isinstance(row, dict) and row.get(k)), None)
        if not isinstance(image, str):
            items.append({"key": f"{name}:{number}",
                          "error": f"line {number} names no image (give 'image' as a path)"})
            continue
        item: dict = {"key": image.removeprefix("file://")}
        if isinstance(row.get("label"), str):
            item["label"] = row["label"]
        boxes = row.get("boxes")
        if boxes is not None and not isinstance(boxes, list):
            # Each box is checked by the operators that use it; a non-list is no annotation at all.
            items.append({"key": item["key"], "error_code": BAD_ANNOTATION,
                          "error": f"line {number}: boxes must be a list of {{'bbox', 'label'}} objects, "
                                   f"got {type(boxes).__name__}"})
            continue
        if boxes is not None:
            item["boxes"] = boxes
        items.append(item if len(item) > 1 else item["key"])
    return items


def item_location(root: Path | str, key: str) -> str:
    """Where an item lives: ``key`` under ``root``, or ``key`` itself when it is an object URI."""
    if storage.is_object_uri(key):
        return storage.normalise(key)
    if storage.is_object_uri(str(root)):
        return str(storage.ObjectUri.parse(str(root)).join(key))
    return os.path.join(root, key)


def items_within(root: Path | str, keys: Sequence[str], roots: Sequence[str]) -> list[bool]:
    """For each item, True if its file (after resolving symlinks) or object stays inside the allowed roots.

    The same answer as resolving every path in full, for less: each folder is resolved
    once, and a file's own name only when it is itself a symlink.
    """
    local_roots, object_roots = storage.split_roots(roots)
    allowed = [_real_root(r) for r in local_roots]
    real_folders: dict[str, str] = {}
    out = []
    for key in keys:
        path = item_location(root, key)
        if storage.is_object_uri(path):
            try:
                uri = storage.ObjectUri.parse(path)
            except ValueError:
                out.append(False)
                continue
            out.append(any(uri.is_under(r) for r in object_roots))
            continue
        folder, name = os.path.split(path)
        if name in ("", ".", "..") or os.path.islink(path):
            real = os.path.realpath(path)
        else:
            if folder not in real_folders:
                real_folders[folder] = os.path.realpath(folder)
            real = os.path.join(real_folders[folder], name)
        out.append(any(_is_under(real, a) for a in allowed))
    return out

