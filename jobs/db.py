"""Opening the service's SQLite file: one convention for every table set that lives in it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path


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
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            yield conn
        finally:
            conn.close()

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
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
