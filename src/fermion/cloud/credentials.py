"""Tokens, passwords and client secrets: how they are made, stored and checked.

Tokens are 40 hex digits from ``secrets`` and stored as their SHA-256: a lookup is one indexed
query, and a copy of the database grants nothing. Passwords and client secrets are low-entropy or
long-lived, so they get argon2id, which is slow on purpose; it is paid at login, never per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# Verified against when the account does not exist, so a miss costs what a hit costs.
_DUMMY_HASH = _hasher.hash("fermion-dummy-password")

TOKEN_HEX_CHARS = 40


def new_token() -> str:
    return secrets.token_hex(TOKEN_HEX_CHARS // 2)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing hash still costs one verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
