"""Tokens, passwords and client secrets: how they are made, stored and checked.

Tokens are 40 hex digits from ``secrets`` and stored as their SHA-256: a lookup is one indexed
query, and a copy of the database grants nothing. Passwords and client secrets are low-entropy or
long-lived, so they get argon2id, which is slow on purpose; it is paid at login, never per request.

The API and the device server share one event loop (``--device-workers 0``), so argon2 never
runs on it: the ``*_async`` functions run it on a pool of its own, whose size bounds the threads
and the memory (64 MiB each) a flood of logins can take.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
_ARGON2_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a miss costs what a hit costs."""
    return _hasher.hash("fermion-dummy-password")


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
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_ARGON2_POOL, hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """:func:`verify_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        _ARGON2_POOL, verify_password, stored_hash, password
    )
