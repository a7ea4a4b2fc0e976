"""Where a task's files live: a server path or a prefix of an S3-compatible bucket, behind one interface.

A location is either an absolute server path or an object URI ``s3://bucket/prefix``
(``obs://`` is an alias: Huawei OBS speaks the S3 protocol). This module parses and
confines URIs and holds the one client of the store (pyarrow's ``S3FileSystem``, see
:mod:`jobs.storage` for how it is configured and how items are read through it).

:class:`ObjectPath` offers the few ``pathlib.Path`` methods a run's files need (see
:mod:`jobs.layout`), so code that reads and writes them works on either kind of
location (:func:`as_location`). A bucket has no rename; an object written by one PUT
(or one completed multipart upload) is atomic, so every write here sends a whole
object at once (see :mod:`jobs.atomic`).

Kept free of numpy and the operators (the runner's claim imports it through the layout).
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import TextIO

#: URI schemes that name an object in an S3-compatible store (``obs`` is Huawei OBS's name for it).
OBJECT_SCHEMES = ("s3", "obs")
_URI = re.compile(r"^(s3|obs)://([^/]+)(?:/(.*))?$", re.IGNORECASE)

#: Objects read or written at once (per chunk, or per copy), and attempts per request before it fails.
FETCH_CONCURRENCY = 8
FETCH_ATTEMPTS = 4


@dataclass(frozen=True)
class ObjectUri:
    """``s3://bucket/key``; ``key`` has no leading or trailing slash ("" is the bucket itself)."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> ObjectUri:
        match = _URI.match(uri)
        if match is None or not match.group(2):
            raise ValueError(f"not an object URI (s3://bucket/prefix): {uri!r}")
        key = (match.group(3) or "").strip("/")
        if ".." in PurePosixPath(key).parts or "\x00" in key:
            raise ValueError(f"object URI must not contain '..' or NUL: {uri!r}")
        return cls(match.group(2), key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    @property
    def fs_path(self) -> str:
        """The path pyarrow's filesystem names this object by."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def join(self, relative: str) -> ObjectUri:
        return ObjectUri.parse(f"s3://{self.bucket}/{self.key}/{relative.lstrip('/')}")

    def is_under(self, root: ObjectUri) -> bool:
        """Same bucket, and the key is the root's prefix or lies below it on a ``/`` boundary."""
        if self.bucket != root.bucket:
            return False
        return not root.key or self.key == root.key or self.key.startswith(root.key + "/")


def is_object_uri(location: str) -> bool:
    return bool(_URI.match(location or ""))


def normalise(location: str) -> str:
    """``obs://b/p/`` -> ``s3://b/p``; a server path is returned unchanged."""
    return str(ObjectUri.parse(location)) if is_object_uri(location) else location


def split_roots(roots: Sequence[str]) -> tuple[list[str], list[ObjectUri]]:
    """Allowed roots as (server paths, object roots)."""
    paths, objects = [], []
    for root in roots:
        (objects.append(ObjectUri.parse(root)) if is_object_uri(root) else paths.append(root))
    return paths, objects


def uri_within(uri: str, roots: Sequence[str]) -> ObjectUri:
    """The parsed ``uri`` if it lies under one of the object roots in ``roots``; ValueError otherwise."""
    parsed = ObjectUri.parse(uri)
    _, objects = split_roots(roots)
    if not any(parsed.is_under(root) for root in objects):
        raise ValueError(f"location {uri!r} is outside the allowed roots")
    return parsed



# ----- the store ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _filesystem():
    """One client per process: the SDK's credential chain and connection pool are built once."""
    from pyarrow import fs

    # The SDK pyarrow bundles finds keys, profiles and the region itself, but not the endpoint
    # variable (AWS_ENDPOINT_URL): read here, the one place, so MinIO/OBS/moto work by configuration.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    # The standard retry strategy backs off on throttling (503 SlowDown) and transient errors. Delayed
    # opens let a small write go out as one PutObject at close rather than a three-request multipart upload.
    return fs.S3FileSystem(endpoint_override=endpoint or None, region=region or None, allow_delayed_open=True,
                           retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=FETCH_ATTEMPTS))



# ----- a task's files in a bucket ------------------------------------------------------------

#: Bytes read or sent per call when an object is streamed.
_BLOCK = 8 << 20


class ObjectPath:
    """An object (or a prefix, as a folder) in a bucket, with the ``pathlib.Path`` methods a run's files use.

    Missing objects raise FileNotFoundError and other failures OSError, as files do, so code written for
    server paths handles both. There is no ``__fspath__``: an object cannot be opened as a file by mistake.
    """

    __slots__ = ("uri",)

    def __init__(self, uri: ObjectUri | str) -> None:
        self.uri = uri if isinstance(uri, ObjectUri) else ObjectUri.parse(uri)

    def __str__(self) -> str:
        return str(self.uri)

    def __repr__(self) -> str:
        return f"ObjectPath({str(self.uri)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __truediv__(self, name: str) -> ObjectPath:
        return ObjectPath(self.uri.join(str(name)))

    @property
    def name(self) -> str:
        return PurePosixPath(self.uri.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.uri.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.uri.key).suffix

    @property
    def parent(self) -> ObjectPath:
        parent = PurePosixPath(self.uri.key).parent.as_posix()
        return ObjectPath(ObjectUri(self.uri.bucket, "" if parent == "." else parent))

    # ----- reads -------------------------------------------------------------------------

    def _info(self):
        try:
            return _filesystem().get_file_info(self.uri.fs_path)
        except OSError as exc:
            raise _os_error(exc, self) from exc

    def exists(self) -> bool:
        from pyarrow import fs

        return self._info().type != fs.FileType.NotFound

    def is_file(self) -> bool:
        from pyarrow import fs

        return bool(self.uri.key) and self._info().type == fs.FileType.File

    def stat(self) -> SimpleNamespace:
        from pyarrow import fs

        info = self._info()
        if info.type != fs.FileType.File:
            raise FileNotFoundError(f"no object at {self}")
        return SimpleNamespace(st_size=info.size, st_mtime_ns=info.mtime_ns or 0)

    def read_bytes(self) -> bytes:
        try:
            with _filesystem().open_input_stream(self.uri.fs_path) as stream:
                return stream.read()
        except OSError as exc:
            raise _os_error(exc, self) from exc

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def open(self, mode: str = "r", encoding: str = "utf-8", errors: str = "strict") -> TextIO:
        """The object as a text stream, read as it is consumed (reading only: writes go through
        :mod:`jobs.atomic`, whole)."""
        if mode != "r":
            raise ValueError("an object is opened for reading only; write it whole (jobs.atomic)")
        try:
            buffered = io.BufferedReader(_filesystem().open_input_stream(self.uri.fs_path), _BLOCK)
            buffered.peek(1)  # a delayed open meets a missing object here, not at the first line read
        except OSError as exc:
            raise _os_error(exc, self) from exc
        return io.TextIOWrapper(buffered, encoding=encoding, errors=errors)

    def glob(self, pattern: str) -> list[ObjectPath]:
        """The objects directly under this prefix whose names match ``pattern``, sorted."""
        from pyarrow import fs

        selector = fs.FileSelector(self.uri.fs_path, recursive=False, allow_not_found=True)
        try:
            infos = _filesystem().get_file_info(selector)
        except OSError as exc:
            raise _os_error(exc, self) from exc
        names = sorted(PurePosixPath(i.path).name for i in infos if i.type == fs.FileType.File)
        return [self / name for name in names if fnmatch.fnmatchcase(name, pattern)]

    def walk_files(self) -> Iterator[tuple[str, ObjectPath]]:
        """Every object below this prefix: (key relative to it, its path), sorted."""
        try:
            keys = list_files(self.uri)
        except OSError as exc:
            raise _os_error(exc, self) from exc
        for key in keys:
            yield key, self / key

    # ----- writes: each one whole object --------------------------------------------------

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object lies below it."""

    def write_bytes(self, data: bytes) -> None:
        """One whole object: readers see the old one or this one, never a part."""
        try:
            with _filesystem().open_output_stream(self.uri.fs_path) as out:
                out.write(data)
        except OSError as exc:
            raise _os_error(exc, self) from exc

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def touch(self, exist_ok: bool = True) -> None:
        self.write_bytes(b"")

    def upload(self, local: str | Path) -> None:
        """The local file ``local`` as this one object. A large file goes as a multipart upload, which
        also appears only when it completes; the file is complete and flushed before this is called."""
        try:
            with open(local, "rb") as src, _filesystem().open_output_stream(self.uri.fs_path) as out:
                while block := src.read(_BLOCK):
                    out.write(block)
        except OSError as exc:
            raise _os_error(exc, self) from exc

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            _filesystem().delete_file(self.uri.fs_path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except OSError as exc:
            raise _os_error(exc, self) from exc


#: Where a run's files may live: a server path or a bucket prefix.
Location = Path | ObjectPath


def as_location(path: str | Path | ObjectPath) -> Location:
    """``s3://`` / ``obs://`` locations as :class:`ObjectPath`, anything else as a server path."""
    if isinstance(path, (Path, ObjectPath)):
        return path
    return ObjectPath(path) if is_object_uri(path) else Path(path)


def _os_error(exc: OSError, where: ObjectPath) -> OSError:
    """The SDK's error as the OS error a file would give (the message names the request, never credentials)."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return FileNotFoundError(f"the bucket {where.uri.bucket!r} does not exist")
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text or "Path does not exist" in text:
        return FileNotFoundError(f"no object at {where}")
    return OSError(f"{where}: {first}")


def copy_file(source: Location, target: Location) -> None:
    """``source`` copied whole to ``target``, either of them a server path or an object: within the store a
    server-side copy (the bytes never pass through this process), else one download or upload."""
    if isinstance(source, ObjectPath) and isinstance(target, ObjectPath):
        try:
            _filesystem().copy_file(source.uri.fs_path, target.uri.fs_path)
        except OSError as exc:
            raise _os_error(exc, source) from exc
    elif isinstance(target, ObjectPath):
        target.upload(source)
    elif isinstance(source, ObjectPath):
        from jobs.atomic import write_bytes_atomic

        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, source.read_bytes())
    else:
        import shutil

        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def copy_many(pairs: Sequence[tuple[Location, Location]], concurrency: int = FETCH_CONCURRENCY) -> None:
    """Every (source, target) copied, at most ``concurrency`` at once when a bucket is involved; the first
    failure is raised once the copies in flight have ended."""
    remote = any(isinstance(a, ObjectPath) or isinstance(b, ObjectPath) for a, b in pairs)
    if not remote or len(pairs) < 2:
        for source, target in pairs:
            copy_file(source, target)
        return
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(pairs)))) as pool:
        for future in [pool.submit(copy_file, a, b) for a, b in pairs]:
            future.result()


def upload_tree(folder: str | Path, target: ObjectPath, concurrency: int = FETCH_CONCURRENCY) -> int:
    """Every file under the local ``folder`` as an object at the same relative key under ``target``;
    returns how many."""
    pairs = [(Path(dirpath, name), target / Path(dirpath, name).relative_to(folder).as_posix())
             for dirpath, _, names in os.walk(folder) for name in names]
    copy_many(pairs, concurrency)
    return len(pairs)


def check_writable(folder: ObjectPath) -> None:
    """Raise OSError unless an object can be written under ``folder`` (a small hidden object is written
    and removed: only a write proves the bucket exists and the credentials may write there)."""
    probe = folder / f".rayproc-write-check-{os.getpid()}-{time.monotonic_ns()}"
    probe.write_bytes(b"")
    probe.unlink(missing_ok=True)


def list_files(prefix: ObjectUri) -> list[str]:
    """Every object under ``prefix``, as sorted keys relative to it (folders are prefixes); OSError if the
    store cannot be asked."""
    from pyarrow import fs

    selector = fs.FileSelector(prefix.fs_path, recursive=True, allow_not_found=True)
    infos = _filesystem().get_file_info(selector)
    base = prefix.fs_path.rstrip("/") + "/"
    return sorted(i.path[len(base):] for i in infos if i.type == fs.FileType.File and i.path.startswith(base))
