"""Users, projects, memberships and API tokens (same database as the tasks).

A token reads ``rpt_<token id>.<secret>``. Only SHA-256 of the secret is stored
(the secret is 256 random bits, so a slow hash adds nothing); the id finds the
row and the digests are compared in constant time. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from jobs.db import Database, IntegrityError

ROLES = ("viewer", "member")
#: What each role may do in its projects. Service admins may do everything everywhere.
ROLE_ACTIONS = {"viewer": frozenset({"read"}), "member": frozenset({"read", "write"})}

_NAME = re.compile(r"^[a-zA-Z0-9\-_.@]{1,64}$")
_TOKEN = re.compile(r"^rpt_([0-9a-f]{16})\.([A-Za-z0-9_\-]{43})$")
_DUMMY_DIGEST = hashlib.sha256(b"no such token").hexdigest()

class AccountError(ValueError):
    """A request to change accounts that cannot be carried out (the message says why)."""


class AccountNotFound(AccountError):
    pass


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    is_admin: bool
    token_id: str | None = None


#: Who every request is in the explicit no-auth development mode.
DEV_PRINCIPAL = Principal(user_id="dev", name="dev (authentication disabled)", is_admin=True)


def _now() -> int:
    return int(time.time() * 1000)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value or ""):
        raise AccountError(f"{what} must be 1-64 letters, digits or - _ . @")
    return value


class Accounts(Database):
    def __init__(self, target: str | Path) -> None:
        """``target``: the SQLite file's path, or a ``postgresql://`` URL (tables: ``jobs/migrations``)."""
        super().__init__(target)

    # ----- users and tokens --------------------------------------------------------------

    def create_user(self, name: str, *, is_admin: bool = False) -> Principal:
        check_name(name, "user name")
        user_id = "u_" + secrets.token_hex(8)
        try:
            with self._connect() as conn:
                conn.execute("INSERT INTO users VALUES (?, ?, ?, ?)", (user_id, name, int(is_admin), _now()))
        except IntegrityError:
            raise AccountError(f"user {name!r} already exists") from None
        return Principal(user_id, name, is_admin)

    def user(self, name: str) -> Principal:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise AccountNotFound(f"user {name!r} not found")
        return Principal(row["user_id"], row["name"], bool(row["is_admin"]))

    def users(self) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, is_admin, created_ms FROM users ORDER BY name").fetchall()
        return [{"name": r["name"], "is_admin": bool(r["is_admin"]), "create_time": r["created_ms"]} for r in rows]

    def issue_token(self, user_name: str, token_name: str = "") -> tuple[str, str]:
        """Create a token for a user. Returns ``(token_id, token)``; the token is never shown again."""
        user = self.user(user_name)
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self._connect() as conn:
            conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, NULL)",
                         (token_id, user.user_id, token_name[:64], _digest(secret), _now()))
        return token_id, f"rpt_{token_id}.{secret}"

    def revoke_token(self, token_id: str) -> None:
        with self._connect() as conn:
            cur = conn.execute("UPDATE tokens SET revoked_ms = ? WHERE token_id = ? AND revoked_ms IS NULL",
                               (_now(), token_id))
        if not cur.rowcount:
            raise AccountNotFound(f"no active token {token_id!r}")

    def tokens(self, user_name: str | None = None) -> list[dict]:
        sql = ("SELECT t.token_id, t.name, t.created_ms, t.revoked_ms, u.name AS user FROM tokens t "
               "JOIN users u ON u.user_id = t.user_id")
        args: tuple = ()
        if user_name is not None:
            sql += " WHERE u.name = ?"
            args = (user_name,)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY t.created_ms", args).fetchall()
        return [{"token_id": r["token_id"], "name": r["name"], "user": r["user"], "create_time": r["created_ms"],
                 "revoked": r["revoked_ms"] is not None} for r in rows]

    def authenticate(self, token: str) -> Principal | None:
        match = _TOKEN.fullmatch(token or "")
        token_id, secret = (match.group(1), match.group(2)) if match else ("", "")
        with self._connect() as conn:
            row = conn.execute(
                "SELECT t.digest, t.revoked_ms, u.user_id, u.name, u.is_admin FROM tokens t "
                "JOIN users u ON u.user_id = t.user_id WHERE t.token_id = ?", (token_id,)).fetchone()
        stored = row["digest"] if row is not None else _DUMMY_DIGEST
        # Always compare, so an unknown id costs the same as a wrong secret.
        same = hmac.compare_digest(stored, _digest(secret))
        if row is None or not match or not same or row["revoked_ms"] is not None:
            return None
        return Principal(row["user_id"], row["name"], bool(row["is_admin"]), token_id)

    # ----- projects and memberships ------------------------------------------------------

    def create_project(self, project_id: str, name: str = "") -> None:
        try:
            with self._connect() as conn:
                conn.execute("INSERT INTO projects VALUES (?, ?, ?)", (project_id, name[:64], _now()))
        except IntegrityError:
            raise AccountError(f"project {project_id!r} already exists") from None

    def ensure_project(self, project_id: str) -> None:
        if self.project_exists(project_id):  # a read: reads must go on when the data directory is read-only
            return
        with self._connect() as conn:
            conn.execute("INSERT INTO projects VALUES (?, '', ?) ON CONFLICT DO NOTHING", (project_id, _now()))

    def project_exists(self, project_id: str) -> bool:
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM projects WHERE project_id = ?", (project_id,)).fetchone() is not None

    def projects(self, principal: Principal | None = None) -> list[dict]:
        with self._connect() as conn:
            if principal is None or principal.is_admin:
                rows = conn.execute("SELECT project_id, name, NULL AS role FROM projects ORDER BY project_id")
            else:
                rows = conn.execute(
                    "SELECT p.project_id, p.name, m.role FROM projects p JOIN memberships m "
                    "ON m.project_id = p.project_id WHERE m.user_id = ? ORDER BY p.project_id", (principal.user_id,))
            return [{"project_id": r["project_id"], "name": r["name"],
                     "role": r["role"] or ("admin" if principal is not None else None)} for r in rows.fetchall()]

    def set_role(self, project_id: str, user_name: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}")
        if not self.project_exists(project_id):
            raise AccountNotFound(f"project {project_id!r} not found")
        user = self.user(user_name)
        with self._connect() as conn:
            conn.execute("INSERT INTO memberships VALUES (?, ?, ?) ON CONFLICT (user_id, project_id) "
                         "DO UPDATE SET role = excluded.role", (user.user_id, project_id, role))

    def remove_member(self, project_id: str, user_name: str) -> None:
        user = self.user(user_name)
        with self._connect() as conn:
            cur = conn.execute("DELETE FROM memberships WHERE user_id = ? AND project_id = ?",
                               (user.user_id, project_id))
        if not cur.rowcount:
            raise AccountNotFound(f"{user_name!r} is not a member of {project_id!r}")

    def role_in(self, principal: Principal, project_id: str) -> str | None:
        """The principal's role in an existing project ("admin" for service admins), else None."""
        if not self.project_exists(project_id):
            return None
        if principal.is_admin:
            return "admin"
        with self._connect() as conn:
            row = conn.execute("SELECT role FROM memberships WHERE user_id = ? AND project_id = ?",
                               (principal.user_id, project_id)).fetchone()
        return row["role"] if row else None

    # ----- first start -------------------------------------------------------------------

    def ensure_initial_admin(self, token_file: Path) -> Path | None:
        """On first start (no admin yet) create user ``admin`` and write its token to ``token_file``
        (mode 0600). Returns the file's path when it was written."""
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM users WHERE is_admin = 1").fetchone():
                return None
        self.create_user("admin", is_admin=True)
        _, token = self.issue_token("admin", "initial admin token")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token_file
