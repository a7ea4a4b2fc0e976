"""Where item bytes come from: server paths or S3-compatible buckets, behind one small interface.

A location is either an absolute server path or an object URI ``s3://bucket/prefix``
(``obs://`` is an alias: Huawei OBS speaks the S3 protocol). This module and
:mod:`jobs.locations` are the one place that knows the difference: they parse URIs,
confine them to the allowed ``s3://bucket[/prefix]`` roots, list images under a prefix,
read manifests, and fetch objects for a chunk with bounded concurrency and retries.

Object access goes through pyarrow's ``S3FileSystem`` (pyarrow is already installed
as a Ray Data dependency; it wraps the AWS C++ SDK): credentials, region and
endpoint come from the standard AWS variables and files (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_PROFILE``
and ``~/.aws``), so MinIO, Ceph, OBS or S3 work by configuration alone.

URIs, confinement and the store's one client live in :mod:`jobs.locations` (re-exported
here), which also writes a task's files to a bucket when its work path is one.

Errors, as item error codes::

    object_not_found    the object (or the whole bucket) does not exist
    object_unreadable   access denied, or the read kept failing after retries
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from jobs.locations import (  # noqa: F401  (re-exported: the names items and sources are read by)
    FETCH_ATTEMPTS,
    FETCH_CONCURRENCY,
    OBJECT_SCHEMES,
    Location,
    ObjectPath,
    ObjectUri,
    _filesystem,
    as_location,
    check_writable,
    copy_file,
    copy_many,
    is_object_uri,
    list_files,
    normalise,
    split_roots,
    upload_tree,
    uri_within,
)
from operators.image_io import ItemError

OBJECT_NOT_FOUND = "object_not_found"
OBJECT_UNREADABLE = "object_unreadable"

#: First wait between two attempts; it doubles each time (throttling clears within seconds).
RETRY_BACKOFF_SECONDS = 0.2


class ObjectError(ItemError):
    """One object could not be listed or read; ``code`` is one of the codes above. An item error like any
    other decoding failure, so the item it names fails with this code and message."""


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
    try:
        return list_files(prefix)
    except OSError as exc:
        raise _classify(exc) from exc


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
