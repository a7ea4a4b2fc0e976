"""The ``Idempotency-Key`` header: its name, its format and the one check of it.

A create sent with a key may be repeated safely: the service answers a repeat with the first answer (same id, same
status code, same body) instead of creating again. The service and the client check a key by this one rule; the
service answers a key that breaks it with :class:`~rayproc_contract.errors.InvalidRequest` (400), the client raises
the same error before sending anything.
"""

from __future__ import annotations

import re
import uuid

from rayproc_contract.errors import InvalidRequest

__all__ = ["HEADER", "KEY_PATTERN", "MAX_KEY_LENGTH", "REPLAYED_HEADER", "new_key", "validate_key"]

HEADER = "Idempotency-Key"
#: Set to ``true`` on an answer that repeats a stored one.
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
#: Letters, digits and ``- _ . :``: a UUID, a ULID or ``<job>:<step>`` all fit, and a key is safe in logs.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9\-_.:]+$")


def validate_key(value: object) -> str:
    """``value`` if it is a valid key; else :class:`InvalidRequest` saying what is wrong with it."""
    if not isinstance(value, str) or value == "":
        raise InvalidRequest(f"{HEADER} header: cannot be empty")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"{HEADER} header: {len(value)} characters, at most {MAX_KEY_LENGTH}")
    if not KEY_PATTERN.fullmatch(value):
        raise InvalidRequest(f"{HEADER} header: only letters, digits, '-', '_', '.' and ':' are allowed")
    return value


def new_key() -> str:
    """A fresh random key (a UUID4 in hex)."""
    return uuid.uuid4().hex
