"""Where item bytes come from: server paths or S3-compatible buckets, behind one small interface.

A location is either an absolute server path or an object URI ``s3://bucket/prefix``
(``obs://`` is an alias: Huawei OBS speaks the S3 protocol). This module is the one
place that knows the difference: it parses URIs, confines them to the allowed
``s3://bucket[/prefix]`` roots, lists images under a prefix, reads manifests, and
fetches objects for a chunk with bounded concurrency and retries.

Object access goes through pyarrow's ``S3FileSystem`` (pyarrow is already installed
as a Ray Data dependency; it wraps the AWS C++ SDK): credentials, region and
endpoint come from the standard AWS variables and files (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_PROFILE``
and ``~/.aws``), so MinIO, Ceph, OBS or S3 work by configuration alone.

Errors, as item error codes::

    object_not_found    the object (or the whole bucket) does not exist
    object_unreadable   access denied, or the read kept failing after retries
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

from operators.image_io import ItemError

#: URI schemes that name an object in an S3-compatible store (``obs`` is Huawei OBS's name for it).
OBJECT_SCHEMES = ("s3", "obs")
_URI = re.compile(r"^(s3|obs)://([^/]+)(?:/(.*))?$", re.IGNORECASE)

OBJECT_NOT_FOUND = "object_not_found"
OBJECT_UNREADABLE = "object_unreadable"

#: Objects one chunk reads at once, and attempts per object before it fails its item.
FETCH_CONCURRENCY = 8
FETCH_ATTEMPTS = 4
#: First wait between two attempts; it doubles each time (throttling clears within seconds).
RETRY_BACKOFF_SECONDS = 0.2


class ObjectError(ItemError):
    """One object could not be listed or read; ``code`` is one of the codes above. An item error like any
    other decoding failure, so the item it names fails with this code and message."""


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
    # The standard retry strategy backs off on throttling (503 SlowDown) and transient errors.
    return fs.S3FileSystem(endpoint_override=endpoint or None, region=region or None,
                           retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=FETCH_ATTEMPTS))


def _classify(exc: Exception) -> ObjectError:
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "NoSuchKey" in text or "NoSuchBucket" in text \
            or "Path does not exist" in text:
        return ObjectError(OBJECT_NOT_FOUND, "object does not exist")
    # The SDK's message carries the request's details, never the credentials.
    return ObjectError(OBJECT_UNREADABLE, f"object could not be read: {text.splitlines()[0] if text else exc!r}")


def exists(uri: ObjectUri) -> bool:
    """True if ``uri`` names an object or a non-empty prefix."""
    from pyarrow import fs

    try:
        info = _filesystem().get_file_info(uri.fs_path)
    except OSError as exc:
        raise _classify(exc) from exc
    return info.type != fs.FileType.NotFound


def is_object(uri: ObjectUri) -> bool:
    from pyarrow import fs

    return bool(uri.key) and _filesystem().get_file_info(uri.fs_path).type == fs.FileType.File


def list_keys(prefix: ObjectUri) -> list[str]:
    """Every object under ``prefix``, as sorted keys relative to it (folders are prefixes)."""
    from pyarrow import fs

    selector = fs.FileSelector(prefix.fs_path, recursive=True, allow_not_found=True)
    try:
        infos = _filesystem().get_file_info(selector)
    except OSError as exc:
        raise _classify(exc) from exc
    base = prefix.fs_path.rstrip("/") + "/"
    return sorted(i.path[len(base):] for i in infos if i.type == fs.FileType.File and i.path.startswith(base))


def read_bytes(uri: ObjectUri, *, attempts: int = FETCH_ATTEMPTS,
               backoff: float = RETRY_BACKOFF_SECONDS) -> bytes:
    """The object's bytes. A missing object fails at once; other failures are retried with backoff."""
    for attempt in range(attempts):
        try:
            with _filesystem().open_input_stream(uri.fs_path) as stream:
                return stream.read()
        except (OSError, ValueError) as exc:
            error = _classify(exc)
            if error.code == OBJECT_NOT_FOUND or attempt == attempts - 1:
                raise error from exc
            time.sleep(backoff * 2 ** attempt)
    raise ObjectError(OBJECT_UNREADABLE, "object could not be read")  # attempts == 0


def fetch_many(uris: Sequence[ObjectUri], concurrency: int = FETCH_CONCURRENCY) -> list[bytes | ObjectError]:
    """Each object's bytes or its error, in order; at most ``concurrency`` reads in flight."""

    def one(uri: ObjectUri) -> bytes | ObjectError:
        try:
            return read_bytes(uri)
        except ObjectError as exc:
            return exc

    if not uris:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(uris)))) as pool:
        return list(pool.map(one, uris))
