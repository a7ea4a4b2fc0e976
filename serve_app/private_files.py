"""The service's secrets on disk stay its user's: the data directory, the database and Ray's cluster token.

Ray writes its cluster token (``~/.ray/auth_token``) with the process umask, usually world-readable, and SQLite
creates the database the same way. Any local account that can read the token can submit Ray jobs as the service's
user, past rayproc's own authentication; one that can read the database sees every record. At start the service
makes these readable by its own user only, and refuses to start when it cannot.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

#: Folders: the owner may list and enter; nobody else may. Files: the owner reads and writes.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: SQLite's companions of a WAL database file (it creates them with the database file's mode).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


class FilesNotPrivate(RuntimeError):
    """A file or folder holding secrets could not be made readable by the service's user only."""


def ray_token_file() -> Path | None:
    """Where Ray reads its cluster token from, or None when it comes from ``RAY_AUTH_TOKEN`` itself."""
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    return Path.home() / ".ray" / "auth_token"


def default_ray_dir() -> Path:
    return Path.home() / ".ray"


def protect_state(data_dir: Path, db_path: Path | None, extra_files: Iterable[Path] = ()) -> list[Path]:
    """Make the data directory 0700 and the database (with its SQLite companions) and ``extra_files`` 0600.

    Paths that do not exist are left alone (the database is created later, inside the private folder).
    Returns what was changed. Raises :class:`FilesNotPrivate` naming the path and why when one cannot be
    made private: owned by another account, a file system that refuses or ignores the change."""
    changed: list[Path] = []
    _protect(Path(data_dir), PRIVATE_DIR, changed)
    files = [Path(f"{db_path}{suffix}") for suffix in ("", *SQLITE_COMPANIONS)] if db_path else []
    for path in [*files, *extra_files]:
        _protect(Path(path), PRIVATE_FILE, changed)
    return changed


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite takes an empty file as an empty database,
    and gives its companions the database file's mode), so it is never readable by others, not even briefly."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass
    except OSError:
        pass  # a data directory that cannot be written: the database says so, as a 503, on every write


def protect_ray_token() -> list[Path]:
    """Ray's token file 0600 and, when it is Ray's default, ``~/.ray`` 0700; nothing when there is no file."""
    path = ray_token_file()
    changed: list[Path] = []
    if path is None:
        return changed
    if path.parent == default_ray_dir():
        _protect(path.parent, PRIVATE_DIR, changed)
    _protect(path, PRIVATE_FILE, changed)
    return changed


def _protect(path: Path, mode: int, changed: list[Path]) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise FilesNotPrivate(f"refusing to start: {path} is a symbolic link; it must be the {_kind(mode)} "
                              "itself, owned by the service's user")
    if st.st_uid != os.geteuid():
        raise FilesNotPrivate(f"refusing to start: {path} belongs to another account (uid {st.st_uid}); it must "
                              f"be owned by the service's user (uid {os.geteuid()}) with mode {mode:04o}")
    if stat.S_IMODE(st.st_mode) & 0o077 == 0:
        return
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077 | (mode & 0o700))
    except OSError as exc:
        raise FilesNotPrivate(f"refusing to start: {path} is readable by other accounts (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}) and cannot be made private ({exc.strerror}); "
                              f"set its mode to {mode:04o} and start again") from None
    now = stat.S_IMODE(path.stat().st_mode)
    if now & 0o077:
        raise FilesNotPrivate(f"refusing to start: {path} stays readable by other accounts (mode {now:04o}) after "
                              "a change of mode: its file system ignores modes; move the data directory to one that "
                              "keeps them")
    changed.append(path)


def _kind(mode: int) -> str:
    return "folder" if mode == PRIVATE_DIR else "file"
