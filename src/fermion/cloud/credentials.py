"""Tokens, passwords and client secrets: how they are made, stored and checked.

Tokens are 40 hex digits from ``secrets`` and stored as their SHA-256: a lookup is one indexed
query, and a copy of the database grants nothing. Passwords and client secrets are low-entropy or
long-lived, so they get argon2id, which is slow on purpose; it is paid at login, never per request.

The API and the device server share one event loop (``--device-workers 0``), so argon2 never
runs on it: the ``*_async`` functions run it on a pool of its own, whose size bounds the threads
and the memory (64 MiB each) a flood of logins can take. The queue in front of that pool is
bounded too (``ARGON2_MAX_IN_FLIGHT``): when it is full a new hash or verification is refused at
once with ``Argon2Busy`` instead of waiting behind a flood, so a login answers in about a second
or is told to come back, and nothing else the process does waits for it.

Every verification goes through ``verify_password_async``, which counts it
(``fermion_argon2_verifications_total``): a login costs the same verifications whether or not
the account exists, and that counter is how the tests check it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
ARGON2_WORKERS = 2
# Running plus waiting. Three waiting per thread keeps the worst wait near a second on a small
# machine (one verification takes 0.1-0.25 s) while absorbing the bursts real clients make.
ARGON2_MAX_IN_FLIGHT = 4 * ARGON2_WORKERS
# argon2 is the one CPU-heavy thing the process does for a caller who has proven nothing yet, so
# its threads run at the lowest CPU priority: on a busy machine the event loop (API requests,
# device handshakes) is scheduled before them, and a flood of logins slows logins, not the rest.
ARGON2_NICE = 5


def _lower_priority() -> None:
    # Linux keeps the nice value per thread: this lowers the argon2 thread only. Elsewhere, or
    # where it is not allowed, argon2 runs at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ARGON2_NICE)


_ARGON2_POOL = ThreadPoolExecutor(
    max_workers=ARGON2_WORKERS, thread_name_prefix="argon2", initializer=_lower_priority
)
_in_flight = 0
_in_flight_lock = threading.Lock()  # released from the pool's threads as well as the loop's
T = TypeVar("T")

VERIFICATIONS = Counter(
    "fermion_argon2_verifications",
    "argon2 password and client-secret verifications run, dummy ones for unknown accounts "
    "included.",
)
REFUSED = Counter(
    "fermion_argon2_refused",
    "argon2 hashes and verifications refused at once because the argon2 queue was full.",
)


class Argon2Busy(Exception):
    """The argon2 queue is full: refused without waiting (the API answers 503)."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(
            f"the server is busy checking other passwords; try again in {retry_after} seconds"
        )
        self.retry_after = retry_after


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


def argon2_in_flight() -> int:
    """Hashes and verifications running or waiting for a thread of the argon2 pool."""
    return _in_flight


def _done(_future: Future[object]) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight -= 1


async def _on_pool(work: Callable[[], T]) -> T:
    """``work`` on the argon2 pool, or ``Argon2Busy`` at once when its queue is full."""
    global _in_flight
    with _in_flight_lock:
        if _in_flight >= ARGON2_MAX_IN_FLIGHT:
            REFUSED.inc()
            raise Argon2Busy
        _in_flight += 1
    # Released when the thread is done, not when the caller stops waiting: a client that hangs
    # up does not stop its argon2 run, so it must keep its place in the bound until then.
    future = _ARGON2_POOL.submit(work)
    future.add_done_callback(_done)
    return await asyncio.wrap_future(future)


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` off the event loop (``Argon2Busy`` when the queue is full)."""
    return await _on_pool(functools.partial(hash_password, password))


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """:func:`verify_password` off the event loop (``Argon2Busy`` when the queue is full).

    The one place logins verify a secret: pass ``None`` for an account that does not exist,
    so that the miss costs one verification as a hit does.
    """
    result = await _on_pool(functools.partial(verify_password, stored_hash, password))
    VERIFICATIONS.inc()
    return result
