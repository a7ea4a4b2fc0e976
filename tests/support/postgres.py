"""A real PostgreSQL server for the tests, on loopback, and the ``database`` fixture every store test runs on.

The server is made once per session: ``initdb`` in a temporary folder, then ``pg_ctl start`` on a free port,
listening on 127.0.0.1 only (and a Unix socket in that folder), with a random password for the ``rayproc`` role
(scram-sha-256 over TCP). PostgreSQL refuses to run as root, so as root (here and in CI) it runs as the
``postgres`` system user, in a folder that user owns. Each test gets the shared database emptied, or a
new one of its own (``new_database``).

``database`` is parametrised: every test that takes it runs as ``[sqlite]`` and ``[postgresql]``. Where no
PostgreSQL is installed the ``[postgresql]`` cases skip, saying why, at collection; in CI (``CI=true``) they run
and fail instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster import free_port


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's ``/usr/lib/postgresql/<version>/bin`` (newest
    first), else ``pg_config --bindir``, else wherever ``initdb`` is on the PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version(p), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                             check=True).stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _version(folder: str) -> tuple[int, ...]:
    name = Path(folder).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit()) or (0,)


BINDIR = find_bindir()
IN_CI = bool(os.environ.get("CI"))
REASON = "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on the PATH)"
#: Marks a test (or a parameter) that needs the server; CI prepares it, so there a missing one fails.
needs_postgres = pytest.mark.skipif(BINDIR is None and not IN_CI, reason=REASON)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]


@dataclass
class PostgresServer:
    folder: Path
    port: int
    password: str
    user: str = "rayproc"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` outside a transaction (CREATE DATABASE cannot run in one)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    template: str | None = None

    shared: str | None = None

    def emptied(self) -> str:
        """The session's shared database at the newest schema, every table emptied (cheaper than a new
        database per test, about a second under load; DELETE beats TRUNCATE on tables this small)."""
        import psycopg

        if self.shared is None:
            self.shared = self.new_database()
        with psycopg.connect(self.shared, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                                 "AND tablename <> 'rayproc_schema_version'")]
            with conn.transaction():
                for table in tables:
                    conn.execute(f"DELETE FROM {table}")
        return self.shared

    def new_database(self, *, empty: bool = False) -> str:
        """A fresh database at the newest schema (copied from a template migrated once), or ``empty``; its URL."""
        if not empty and self.template is None:
            from jobs.db import Database, close_pool

            url = self.new_database(empty=True)
            Database(url)  # the service's migration, once per session
            close_pool(url)
            self.template = url.rsplit("/", 1)[1]
        name = "t_" + secrets.token_hex(6)
        self.admin(f"CREATE DATABASE {name} TEMPLATE {'template0' if empty else self.template}")
        return self.url(name)


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def start_server() -> PostgresServer:
    if BINDIR is None:
        raise RuntimeError(REASON + "; install Debian's postgresql package")
    folder = Path(tempfile.mkdtemp(prefix="rayproc-pg-"))
    password = secrets.token_urlsafe(18)
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for path in (folder, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    data = folder / "data"
    subprocess.run(_as_server_user([str(BINDIR / "initdb"), "-D", str(data), "-U", "rayproc", f"--pwfile={pwfile}",
                                    "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
                                    "--no-instructions"]),
                   check=True, capture_output=True)
    pwfile.unlink()
    port = free_port()
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=300")
    subprocess.run(_as_server_user([str(BINDIR / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                    str(folder / "server.log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True)
    server = PostgresServer(folder, port, password)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.admin("SELECT 1")
            return server
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_server(server: PostgresServer) -> None:
    subprocess.run(_as_server_user([str(BINDIR / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate",
                                    "-w", "stop"]), capture_output=True)
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use)."""
    server = start_server()
    try:
        yield server
    finally:
        from jobs.db import close_pools

        close_pools()
        stop_server(server)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """What a table set opens: a SQLite file's path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "db" / "rayproc.db")
        return
    yield request.getfixturevalue("postgres_server").emptied()
