"""Opening the service's SQLite file: one convention for every table set that lives in it, and the one place
a data directory that cannot be written (full, read-only) becomes a typed error."""

from __future__ import annotations

import errno
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


class StorageUnavailable(Exception):
    """The data directory cannot be written (read-only, or the database cannot be opened). The operation
    changed nothing: SQLite rolls the transaction back whole."""


class StorageFull(StorageUnavailable):
    """The data directory is full."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY_ERRNOS = {errno.EROFS}


def storage_error(exc: BaseException) -> StorageUnavailable | None:
    """The typed error for SQLite's or the OS's way of saying the data directory cannot be written, else None."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "database or disk is full" in text:
            return StorageFull("the service's data directory is full (no space left for the database)")
        if "readonly database" in text or "unable to open database file" in text or "disk I/O error" in text:
            return StorageUnavailable(f"the service's database cannot be written ({text}); is the data "
                                      "directory read-only?")
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return StorageFull("the service's data directory is full (no space left on the device)")
    if isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS:
        return StorageUnavailable(f"the service's data directory cannot be written ({exc.strerror})")
    return None


class Database:
    """A SQLite file in WAL mode (readers never wait for the writer), autocommit, 30 s lock waits.

    A connection per operation: the API's worker threads and the job drivers share the file, and
    SQLite connections must not cross threads.
    """

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(schema)
        # Under the write lock: the service and job drivers may open an older file at the same moment.
        with self._tx() as conn:
            self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Upgrade a file an older release made (add columns, backfill, add indexes). Must be idempotent."""

    @staticmethod
    def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
        return {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection; SQLite's errors for a full or read-only data directory leave it as
        :class:`StorageUnavailable` (:class:`StorageFull`)."""
        try:
            target, uri = self._target()
            conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, uri=uri)
        except sqlite3.OperationalError as exc:
            raise (storage_error(exc) or exc) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        except sqlite3.OperationalError as exc:
            raise (storage_error(exc) or exc) from exc
        finally:
            conn.close()

    def _target(self) -> tuple[str, bool]:
        """What to open: the file, or on a read-only file system the file as immutable. A WAL database cannot
        be opened normally there (SQLite must create its shared-memory file), and nothing can change it, so
        reads go on; writes fail as a read-only database."""
        try:
            read_only = bool(os.statvfs(Path(self.path).parent).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return f"file:{urllib.parse.quote(self.path)}?immutable=1", True
        return self.path, False

    def _snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """Several reads that must agree with each other (a count and its page): one read transaction."""
        return self._transaction("BEGIN")

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, taking the write lock up front so check-then-write cannot interleave."""
        return self._transaction("BEGIN IMMEDIATE")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite already rolled back after some errors (a full disk)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
