"""Idempotent creates: a create's ``Idempotency-Key``, the answer it first got, and the repeat that gets it back.

The rules, as the API documents them:

* A key belongs to a project: ``(project_id, key)`` is the table's primary key, and two projects may use the same
  key for unrelated creates.
* A request is recognised by its *fingerprint*: the endpoint plus the canonical JSON of its parsed body (sorted keys,
  no whitespace, so key order and spacing do not matter); an uploaded file counts by its name and the SHA-256 of its
  bytes. The same key with another fingerprint is a 409 naming the key.
* The first request claims the key with one conditional insert, so of several concurrent requests exactly one
  creates; the others wait for its answer (up to ``wait_seconds``) and repeat it, or get a 409 saying the first is
  still in progress.
* A create that writes one row set (a processor task) takes the key in its own write transaction
  (:meth:`IdempotencyKeys.run_once`): the key, the created rows and the answer commit together or not at all, so a
  keyed create costs one write transaction, as an unkeyed one does, and no claim is ever seen half done. Of
  concurrent requests with one key, the first to commit creates; the others' transactions find the key taken,
  roll back whole and repeat its answer. Creates that write more than the database (an import's payload file)
  claim the key first and record the answer after (:meth:`IdempotencyKeys.run`).
* Only successes are kept. A create that fails (any 4xx or 5xx) created nothing and releases its claim, so a retry
  with the same key is judged afresh: a 503 while Ray is away must not pin the key to the failure, and a 4xx that is
  fixed (a missing folder restored) may go through under the key it first had. This differs from Stripe, which
  keeps 4xx answers too; here a failure never left anything behind that a repeat must not redo.
* Keys are kept ``ttl_seconds`` after their first use (24 hours by default, ``RAYPROC_IDEMPOTENCY_TTL_SECONDS``);
  expired ones are pruned (at most once a minute, on a create) and an expired key is free again.
* A claim whose holder never answered (the service stopped mid-create) is taken over after ``lease_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from jobs.db import Database
from rayproc_contract.idempotency import HEADER, KEY_PATTERN, MAX_KEY_LENGTH, REPLAYED_HEADER, validate_key
from serve_app import errors as E

PRUNE_EVERY_MS = 60_000

#: The header as a route parameter; its description is the API reference's.
# The length and pattern are the document's only: validate_key is the one rule, with its own messages.
KeyHeader = Annotated[str | None, Header(
    alias=HEADER,
    json_schema_extra={"pattern": KEY_PATTERN.pattern, "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    description=(
        "Makes the create safe to repeat. A repeat with the same key and the same body (per project, while the "
        "key is kept: 24 hours by default) answers the first answer again (same id, status code and body, with "
        "`Idempotent-Replayed: true`) and creates nothing; the same key with another body is a 409. 1-255 "
        "letters, digits, `-`, `_`, `.` or `:` (a UUID fits). A create that failed keeps nothing: repeating it "
        "tries again."))]


def fingerprint(endpoint: str, **parts: Any) -> str:
    """The SHA-256 of ``endpoint`` and ``parts`` as canonical JSON; ``bytes`` parts count by their own SHA-256."""
    canonical = {k: hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else v for k, v in parts.items()}
    text = json.dumps({"endpoint": endpoint, **canonical}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Answer:
    """A create's answer, as it is kept and repeated."""

    status_code: int
    body: dict[str, Any]
    #: True when this answer repeats a stored one.
    replayed: bool = False

    def response(self) -> JSONResponse:
        headers = {REPLAYED_HEADER: "true"} if self.replayed else None
        return JSONResponse(status_code=self.status_code, content=self.body, headers=headers)


@dataclass(frozen=True)
class _Row:
    fingerprint: str
    claim: str
    status_code: int | None
    body: str | None
    created_at: int = 0
    claimed_at: int = 0


class KeyTaken(Exception):
    """Raised inside a create's transaction when another request committed the key first: the transaction rolls
    back whole, and :meth:`IdempotencyKeys.run_once` answers as that request's repeat."""


@dataclass(frozen=True)
class KeyClaim:
    """A create's key, to be taken inside the create's own write transaction with :meth:`take`."""

    keys: IdempotencyKeys
    project_id: str
    key: str
    fingerprint: str

    def take(self, conn: Any, answer: Answer) -> None:
        """Hold the key with ``answer`` as its stored answer, in the caller's write transaction ``conn``; raises
        :class:`KeyTaken` if the key is held (the caller's transaction must then roll back)."""
        self.keys._take(conn, self, answer)


class IdempotencyKeys(Database):
    """The ``idempotency_keys`` table in the service's database, and the one way a keyed create runs."""

    def __init__(self, path: str | Path, *, ttl_seconds: float = 86_400.0, lease_seconds: float = 120.0,
                 wait_seconds: float = 10.0, poll_seconds: float = 0.05,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        super().__init__(path)
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._pruned_at = -PRUNE_EVERY_MS

    def run(self, project_id: str, key: str | None, fingerprint: str, create: Callable[[], Answer]) -> Answer:
        """``create()``'s answer; with a key, the stored answer instead when the key was used for this request.

        Raises :class:`~rayproc_contract.errors.InvalidRequest` for a malformed key and
        :class:`~rayproc_contract.errors.Conflict` for a key used with another body, or still held by a request in
        progress after ``wait_seconds``. Whatever ``create`` raises is raised again, with the key released.
        """
        if key is None:
            return create()
        validate_key(key)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            claim = secrets.token_hex(8)
            row = self._claim(project_id, key, fingerprint, claim)
            if row is None:
                return self._create(project_id, key, claim, create)
            answer = self._judge(key, fingerprint, row)
            if answer is not None:
                return answer
            if time.monotonic() >= deadline:
                raise E.Conflict(f"a request with {HEADER} {key!r} is still in progress; repeat it in a moment")
            time.sleep(self.poll_seconds)

    def run_once(self, project_id: str, key: str | None, fingerprint: str,
                 create: Callable[[KeyClaim | None], Answer]) -> Answer:
        """As :meth:`run`, for a create that takes the key in its own write transaction: ``create(claim)`` must
        call ``claim.take(conn, answer)`` inside the transaction that writes what it creates (``claim`` is None
        without a key). Nothing is written for the key outside that transaction: a create that fails leaves no
        trace, and one that another request with the key beat to the commit changes nothing.

        Raises as :meth:`run` does."""
        if key is None:
            return create(None)
        validate_key(key)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            row = self._live_row(project_id, key)  # a plain read: a repeat never waits for the write lock
            if row is None:
                try:
                    return create(KeyClaim(self, project_id, key, fingerprint))
                except KeyTaken:
                    continue  # a request with this key committed first: judge its row
            answer = self._judge(key, fingerprint, row)
            if answer is not None:
                return answer
            if time.monotonic() >= deadline:
                raise E.Conflict(f"a request with {HEADER} {key!r} is still in progress; repeat it in a moment")
            time.sleep(self.poll_seconds)

    def _judge(self, key: str, fingerprint: str, row: _Row) -> Answer | None:
        """The answer for a request meeting ``row`` (its stored answer), a 409 for another request, or None
        while the row's request is in progress."""
        if row.fingerprint != fingerprint:
            raise E.Conflict(f"{HEADER} {key!r} was already used in this project for a different request; "
                             "send a new key for a new request")
        if row.status_code is not None and row.body is not None:
            return Answer(row.status_code, json.loads(row.body), replayed=True)
        return None

    def _live_row(self, project_id: str, key: str) -> _Row | None:
        """The key's row, unless it is expired or an abandoned claim (both are free to take)."""
        with self._connect() as conn:
            row = conn.execute("SELECT fingerprint, claim, status_code, body, created_at, claimed_at "
                               "FROM idempotency_keys WHERE project_id = ? AND key = ?", (project_id, key)).fetchone()
        if row is None:
            return None
        found = _Row(**dict(row))
        now = self.clock()
        if found.created_at < now - self.ttl_ms or (found.status_code is None
                                                    and found.claimed_at < now - self.lease_ms):
            return None
        return found

    def _take(self, conn: Any, claim: KeyClaim, answer: Answer) -> None:
        now = self.clock()
        self._prune(conn, now)
        # The claim's own conditional insert (see _claim), with the answer in the same row.
        taken = conn.execute(
            "INSERT INTO idempotency_keys (project_id, key, fingerprint, claim, status_code, body, created_at, "
            "claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (project_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "claim = excluded.claim, status_code = excluded.status_code, body = excluded.body, "
            "created_at = excluded.created_at, claimed_at = excluded.claimed_at "
            "WHERE idempotency_keys.created_at < ? "
            "OR (idempotency_keys.status_code IS NULL AND idempotency_keys.claimed_at < ?)",
            (claim.project_id, claim.key, claim.fingerprint, secrets.token_hex(8), answer.status_code,
             json.dumps(answer.body), now, now, now - self.ttl_ms, now - self.lease_ms)).rowcount
        if not taken:
            raise KeyTaken(claim.key)

    def _create(self, project_id: str, key: str, claim: str, create: Callable[[], Answer]) -> Answer:
        try:
            answer = create()
        except BaseException:
            self._release(project_id, key, claim)
            raise
        if 200 <= answer.status_code < 300:
            self._record(project_id, key, claim, answer)
        else:
            self._release(project_id, key, claim)
        return answer

    def _claim(self, project_id: str, key: str, fingerprint: str, claim: str) -> _Row | None:
        """None when this request now holds the key; else the row that holds it."""
        now = self.clock()
        with self._tx() as conn:
            self._prune(conn, now)
            # One conditional insert: the primary key lets one request in; an expired key or an abandoned claim
            # is taken over in the same statement.
            taken = conn.execute(
                "INSERT INTO idempotency_keys (project_id, key, fingerprint, claim, created_at, claimed_at) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (project_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "claim = excluded.claim, status_code = NULL, body = NULL, created_at = excluded.created_at, "
                "claimed_at = excluded.claimed_at "
                "WHERE idempotency_keys.created_at < ? "
                "OR (idempotency_keys.status_code IS NULL AND idempotency_keys.claimed_at < ?)",
                (project_id, key, fingerprint, claim, now, now, now - self.ttl_ms, now - self.lease_ms)).rowcount
            if taken:
                return None
            row = conn.execute("SELECT fingerprint, claim, status_code, body FROM idempotency_keys "
                               "WHERE project_id = ? AND key = ?", (project_id, key)).fetchone()
        return _Row(**dict(row))

    def _record(self, project_id: str, key: str, claim: str, answer: Answer) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE idempotency_keys SET status_code = ?, body = ? "
                         "WHERE project_id = ? AND key = ? AND claim = ?",
                         (answer.status_code, json.dumps(answer.body), project_id, key, claim))

    def _release(self, project_id: str, key: str, claim: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM idempotency_keys WHERE project_id = ? AND key = ? AND claim = ? "
                         "AND status_code IS NULL", (project_id, key, claim))

    def _prune(self, conn: Any, now: int) -> None:
        if now - self._pruned_at < PRUNE_EVERY_MS:
            return
        conn.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (now - self.ttl_ms,))
        self._pruned_at = now

    def count(self, project_id: str | None = None) -> int:
        """How many keys are kept (in one project, or in all)."""
        with self._connect() as conn:
            if project_id is None:
                return conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM idempotency_keys WHERE project_id = ?",
                                (project_id,)).fetchone()[0]


def get_keys(request: Request) -> IdempotencyKeys:
    return request.app.state.idempotency


KeysDep = Annotated[IdempotencyKeys, Depends(get_keys)]
