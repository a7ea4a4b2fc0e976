"""Opening the service's database: one convention for every table set that lives in it, on either backend, and
the one place a database that cannot be written or reached becomes a typed error.

Two backends hold the same schema (``jobs/migrations``):

* **SQLite** (the default): one file in the data directory, WAL mode, a connection per operation. Every process
  that opens it (the service, its job drivers) must see the same file system, so drivers run on the head.
* **PostgreSQL** (``RAYPROC_DATABASE_URL=postgresql://...``): a connection pool per process (psycopg 3). Job
  drivers may run on any node that reaches the server.

Statements are written once, in the SQL both understand, with ``?`` placeholders (rewritten for psycopg). Writes
run in :meth:`Database._tx`, which serialises the writers of one table set as SQLite's ``BEGIN IMMEDIATE`` does
(on PostgreSQL a transaction-level advisory lock), so check-then-write sequences cannot interleave and every race
that is one conditional ``UPDATE`` stays one statement.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import sys
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from jobs.migrations import SCHEMA_VERSION, VERSION_TABLE


class StorageUnavailable(Exception):
    """The database cannot be written or reached (a read-only data directory, a SQLite file that cannot be
    opened, a PostgreSQL server that is down or refuses us). The operation changed nothing: its transaction is
    rolled back whole."""


class StorageFull(StorageUnavailable):
    """The data directory (or the PostgreSQL server's disk) is full."""


class IntegrityError(Exception):
    """A unique or primary key refused the write, on either backend (raised as the connection is left)."""

_T = TypeVar("_T")
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_READ_ONLY_ERRNOS = {errno.EROFS}
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
#: Connections one process keeps to PostgreSQL at most (API threads beyond it wait for one, up to the timeout).
POOL_MAX_SIZE = 16
POOL_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5


def is_database_url(target: str | Path) -> bool:
    """Whether ``target`` names a PostgreSQL server (else it is a SQLite file's path)."""
    return isinstance(target, str) and urllib.parse.urlsplit(target).scheme in _POSTGRES_SCHEMES


def database_from(path: str | None, env_name: str | None) -> str:
    """A driver's database from its arguments: the SQLite ``path``, or the URL in the variable ``env_name``."""
    if env_name is None:
        return str(path)
    url = os.environ.get(env_name)
    if not url:
        raise SystemExit(f"the environment variable {env_name} (the database URL) is not set")
    return url


def redact(target: str | Path) -> str:
    """``target`` fit to show: a URL's password replaced by ``***``."""
    if not is_database_url(target):
        return str(target)
    parts = urllib.parse.urlsplit(str(target))
    if parts.password is None:
        return str(target)
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.unquote(parts.username or "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{urllib.parse.quote(user)}:***@{netloc}"))


def storage_error(exc: BaseException) -> StorageUnavailable | None:
    """The typed error for SQLite's, PostgreSQL's or the OS's way of saying the database cannot be written or
    reached, else None. Never carries a connection string."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "database or disk is full" in text:
            return StorageFull("the service's data directory is full (no space left for the database)")
        if "readonly database" in text or "unable to open database file" in text or "disk I/O error" in text:
            return StorageUnavailable(f"the service's database cannot be written ({text}); is the data "
                                      "directory read-only?")
    # psycopg loads only with a PostgreSQL database (its libpq costs a SQLite driver's start): no module, no error.
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return _postgres_error(exc)
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return StorageFull("the service's data directory is full (no space left on the device)")
    if isinstance(exc, OSError) and exc.errno in _READ_ONLY_ERRNOS:
        return StorageUnavailable(f"the service's data directory cannot be written ({exc.strerror})")
    return None


def _postgres_error(exc: BaseException) -> StorageUnavailable | None:
    import psycopg
    import psycopg.errors

    if isinstance(exc, psycopg.errors.DiskFull):
        return StorageFull("the service's database server is out of disk space")
    if isinstance(exc, (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientResources)):
        return StorageUnavailable(f"the service's database cannot be written ({type(exc).__name__})")
    if isinstance(exc, (psycopg.OperationalError, psycopg.errors.InvalidAuthorizationSpecification)):
        # libpq's text names host and port only, but it is not ours to vouch for: say what failed, not its words.
        return StorageUnavailable(f"the service's database server cannot be reached ({type(exc).__name__})")
    return None


class Database:
    """The service's database (a SQLite file, or a PostgreSQL server named by URL), at the newest schema.

    SQLite: WAL mode (readers never wait for the writer), autocommit, 30 s lock waits, a connection per
    operation (the API's worker threads and the job drivers share the file, and SQLite connections must not
    cross threads). PostgreSQL: a pool per process and URL, autocommit outside :meth:`_tx` and :meth:`_snapshot`.
    """

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self.dialect = "postgresql" if is_database_url(self.target) else "sqlite"
        #: The SQLite file (None on PostgreSQL).
        self.path: str | None = None
        if self.dialect == "sqlite":
            self.path = self.target
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
        self._lock_key = zlib.crc32(f"rayproc.write.{type(self).__name__}".encode())
        _ensure_schema(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.target)!r})"

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        """A connection; errors for a full, read-only or unreachable database leave it as
        :class:`StorageUnavailable` (:class:`StorageFull`)."""
        if self.dialect == "postgresql":
            with _pg_connection(self.target) as conn:
                yield conn
            return
        try:
            target, uri = self._target()
            conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, uri=uri)
        except sqlite3.OperationalError as exc:
            raise (storage_error(exc) or exc) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        except sqlite3.OperationalError as exc:
            raise (storage_error(exc) or exc) from exc
        finally:
            conn.close()

    def _target(self) -> tuple[str, bool]:
        """What to open: the file, or on a read-only file system the file as immutable. A WAL database cannot
        be opened normally there (SQLite must create its shared-memory file), and nothing can change it, so
        reads go on; writes fail as a read-only database."""
        try:
            read_only = bool(os.statvfs(Path(self.target).parent).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return f"file:{urllib.parse.quote(self.target)}?immutable=1", True
        return self.target, False

    def _snapshot(self) -> AbstractContextManager[Any]:
        """Several reads that must agree with each other (a count and its page): one read transaction."""
        if self.dialect == "postgresql":
            return self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return self._transaction("BEGIN")

    def _tx(self) -> AbstractContextManager[Any]:
        """One write transaction, taking the table set's write lock up front so check-then-write cannot
        interleave (SQLite: the file's write lock; PostgreSQL: an advisory lock released at commit)."""
        if self.dialect == "postgresql":
            return self._transaction("BEGIN", f"SELECT pg_advisory_xact_lock({self._lock_key})")
        return self._sqlite_tx()

    @contextmanager
    def _sqlite_tx(self) -> Iterator[Any]:
        # The threads of one process queue for the file's write lock on a mutex first. SQLite's own wait is a
        # sleep-and-retry that backs off to 100 ms: twenty API threads polling for a lock held ~2 ms at a time
        # took seconds each, unfairly (a create's p99 was 6x its median). The mutex hands the lock on at once;
        # other processes (job drivers) are still kept out by BEGIN IMMEDIATE. It is held from BEGIN to
        # COMMIT only: opening and closing the connection need no lock.
        with self._connect() as conn, _writer_lock(self.target):
            with self._begun(conn, "BEGIN IMMEDIATE"):
                yield conn

    def _grouped_tx(self, work: Callable[[Any], _T]) -> _T:
        """``work(conn)``'s result, run in a write transaction as :meth:`_tx` would; on SQLite the transaction
        may be shared with other threads' work queued at the same moment (a group commit).

        Each piece of work runs in a savepoint of its own, so what one raises rolls back only its own writes
        and is raised to its own caller; the rest commit together, with one ``COMMIT`` (one fsync of the
        WAL). Under a burst of creates the commit, not the statements, is what a write transaction costs: 20
        threads committing one by one queued behind each other's fsync. Work must only touch the database."""
        if self.dialect == "postgresql":
            with self._tx() as conn:
                return work(conn)
        return _group(self.target).run(self, work)

    @contextmanager
    def _transaction(self, *begin: str) -> Iterator[Any]:
        with self._connect() as conn, self._begun(conn, *begin):
            yield conn

    @staticmethod
    @contextmanager
    def _begun(conn: Any, *begin: str) -> Iterator[None]:
        for statement in begin:
            conn.execute(statement)
        try:
            yield
        except BaseException:
            if conn.in_transaction:  # SQLite already rolled back after some errors (a full disk)
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert_ids(self, conn: Any, sql: str, rows: Sequence[tuple], id_column: str) -> list[int]:
        """Run ``sql`` (one ``INSERT ... VALUES``) for every row, inside :meth:`_tx`; the ids handed out, in
        row order."""
        if not rows:
            return []
        if self.dialect == "postgresql":
            return conn.insert_returning(f"{sql} RETURNING {id_column}", rows)
        conn.executemany(sql, rows)
        # Under the write lock AUTOINCREMENT hands out consecutive ids in row order.
        last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))

    def _like(self) -> str:
        """The case-insensitive ``LIKE`` (SQLite's ``LIKE`` is one for ASCII; PostgreSQL's is not)."""
        return "ILIKE" if self.dialect == "postgresql" else "LIKE"


#: This process's write mutexes, by the SQLite file's real path, and by every spelling of it seen.
_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_lock = threading.Lock()


def _writer_lock(path: str) -> threading.RLock:
    """This process's mutex for writing the SQLite file at ``path`` (reentrant: a nested write transaction
    meets SQLite's own lock, as before)."""
    lock = _writer_locks.get(path)
    if lock is None:
        real = os.path.realpath(path)
        with _writer_locks_lock:
            lock = _writer_locks.setdefault(real, threading.RLock())
            _writer_locks[path] = lock
    return lock


def _forget_writer_locks() -> None:
    global _writer_locks_lock
    _writer_locks.clear()  # a forked child has none of its parent's threads: a lock held there stays held
    _groups.clear()
    _writer_locks_lock = threading.Lock()


class _Work:
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: Callable[[Any], Any]) -> None:
        self.work = work
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _GroupCommit:
    """The work waiting for one SQLite file's next write transaction in this process (see
    :meth:`Database._grouped_tx`). The first waiter to find no transaction running leads: it takes everything
    queued, runs it in one transaction and hands each caller its own result; the rest wait for it."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.queued: list[_Work] = []
        self.leading = False

    def run(self, db: Database, work: Callable[[Any], _T]) -> _T:
        item = _Work(work)
        with self.cond:
            self.queued.append(item)
            while self.leading and not item.done:
                self.cond.wait()
            if not item.done:
                self.leading = True
                batch, self.queued = self.queued, []
        if not item.done:
            try:
                self._commit(db, batch)
            finally:
                with self.cond:
                    self.leading = False
                    for each in batch:
                        each.done = True
                    self.cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result

    @staticmethod
    def _commit(db: Database, batch: list[_Work]) -> None:
        try:
            with db._sqlite_tx() as conn:
                for n, each in enumerate(batch):
                    conn.execute(f"SAVEPOINT w{n}")
                    try:
                        each.result = each.work(conn)
                    except Exception as exc:  # its own failure: undo its writes only
                        if not conn.in_transaction:
                            raise  # SQLite rolled the whole transaction back (a full disk): all of it failed
                        conn.execute(f"ROLLBACK TO w{n}")
                        each.error = _sqlite_error(exc)
                    conn.execute(f"RELEASE w{n}")
        except BaseException as exc:  # the transaction as a whole failed: nothing of it was kept
            for each in batch:
                each.result, each.error = None, exc


def _sqlite_error(exc: Exception) -> Exception:
    """The error ``exc`` leaves :meth:`Database._connect` as."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        return storage_error(exc) or exc
    return exc


#: This process's group commits, by the SQLite file's write mutex (one per file, however it is spelt).
_groups: dict[threading.RLock, _GroupCommit] = {}


def _group(path: str) -> _GroupCommit:
    lock = _writer_lock(path)
    group = _groups.get(lock)
    if group is None:
        with _writer_locks_lock:
            group = _groups.setdefault(lock, _GroupCommit())
    return group


os.register_at_fork(after_in_child=_forget_writer_locks)


# ----- PostgreSQL --------------------------------------------------------------------------------------------


class Row(tuple):
    """A result row read by position or by column name, and ``dict(row)`` gives its columns (as sqlite3.Row)."""

    _index: dict[str, int]

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor):
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._index = index
        return row

    return make


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """``sql`` with SQLite's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A pooled psycopg connection that takes the statements written for SQLite (``?`` placeholders)."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(_pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows)

    def insert_returning(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[int]:
        ids: list[int] = []
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows, returning=True)
            while True:
                ids.extend(r[0] for r in cur.fetchall())
                if not cur.nextset():
                    break
        return ids

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE


_pools: dict[tuple[int, str], Any] = {}
_pools_lock = threading.Lock()


def _pool(url: str):
    """This process's pool for ``url`` (made on first use; a forked child makes its own)."""
    key = (os.getpid(), url)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            from psycopg_pool import ConnectionPool

            pool = ConnectionPool(
                _conninfo(url), min_size=1, max_size=POOL_MAX_SIZE, timeout=POOL_TIMEOUT_SECONDS, open=True,
                kwargs={"autocommit": True, "row_factory": _row_factory,
                        "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                name="rayproc")
            _pools[key] = pool
    return pool


def _conninfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "postgresql":
        url = urllib.parse.urlunsplit(parts._replace(scheme="postgresql"))
    return url


def close_pool(url: str) -> None:
    """Close this process's pool for ``url``, if it has one."""
    with _pools_lock:
        pool = _pools.pop((os.getpid(), url), None)
    if pool is not None:
        pool.close()


def close_pools() -> None:
    """Close this process's PostgreSQL pools (tests; a service that stops)."""
    with _pools_lock:
        for (pid, _), pool in list(_pools.items()):
            if pid == os.getpid():
                pool.close()
        _pools.clear()


@contextmanager
def _pg_connection(url: str) -> Iterator[PgConnection]:
    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        with _pool(url).connection() as raw:
            yield PgConnection(raw)
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except PoolTimeout as exc:
        raise StorageUnavailable("the service's database server cannot be reached (no connection within "
                                 f"{POOL_TIMEOUT_SECONDS:g} s)") from exc
    except psycopg.Error as exc:
        raise (storage_error(exc) or exc) from exc


# ----- the schema ------------------------------------------------------------------------------------------


_MIGRATION_LOCK = zlib.crc32(b"rayproc.migrate")


def _recorded_version(db: Database) -> str | None:
    with db._connect() as conn:
        if db.dialect == "postgresql":
            exists = conn.execute("SELECT to_regclass(?) IS NOT NULL", (VERSION_TABLE,)).fetchone()[0]
        else:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (VERSION_TABLE,)).fetchone() is not None
        if not exists:
            return None
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        return row[0] if row else None


def _ensure_schema(db: Database) -> None:
    """Create or upgrade the schema unless the database already records the newest version.

    The check is a plain read (so a read-only data directory still opens); an upgrade runs in one transaction
    that first takes the migration lock and checks again, so of processes starting at once one upgrades."""
    if _recorded_version(db) == SCHEMA_VERSION:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from jobs import migrations

    try:
        if db.dialect == "postgresql":
            engine = create_engine(_conninfo(db.target).replace("postgresql://", "postgresql+psycopg://", 1),
                                   poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS})
        else:
            target, uri = db._target()
            engine = create_engine("sqlite://", poolclass=NullPool, creator=lambda: sqlite3.connect(
                target, timeout=30.0, isolation_level=None, uri=uri, check_same_thread=False))
        try:
            with engine.connect() as conn:
                if db.dialect == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                else:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                migrations.upgrade(conn)
                conn.commit()
        finally:
            engine.dispose()
    except Exception as exc:
        typed = storage_error(exc) or storage_error(getattr(exc, "orig", None) or exc)
        if typed is not None:
            raise typed from exc
        raise
