from __future__ import annotations

import asyncio
import re
import threading

import pytest

from fermion.cloud import credentials
from fermion.cloud.credentials import hash_password, hash_token, new_token, verify_password
from fermion.cloud.logconfig import redact


def test_tokens_are_40_hex_and_stored_as_sha256() -> None:
    token = new_token()
    assert re.fullmatch(r"[0-9a-f]{40}", token)
    assert new_token() != token
    digest = hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and token not in digest


def test_passwords_are_argon2id() -> None:
    stored = hash_password("s3cret-password")
    assert stored.startswith("$argon2id$")
    assert "s3cret-password" not in stored
    assert verify_password(stored, "s3cret-password")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


def test_redact_hides_secrets_in_query_strings() -> None:
    line = "/v1/devices?access_token=abc123&x=1&client_secret=zzz&password=p"
    out = redact(line)
    assert "abc123" not in out and "zzz" not in out and "=p" not in out
    assert "x=1" in out


class _WaitingHasher:
    """Stands in for argon2: each check waits until the event loop has run again."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def verify(self, stored_hash: str, password: str) -> bool:
        self.threads.append(threading.current_thread().name)
        # On the loop's own thread this would wait for the loop: a deadlock, cut short here.
        assert self.release.wait(10), "the event loop did not run while the password was checked"
        return True

    def hash(self, password: str) -> str:
        self.verify("", password)
        return "$argon2id$stand-in"


@pytest.mark.parametrize("call", ["verify", "hash"])
async def test_argon2_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    stand_in = _WaitingHasher()
    monkeypatch.setattr(credentials, "_hasher", stand_in)
    if call == "verify":
        pending = asyncio.ensure_future(credentials.verify_password_async("$argon2id$x", "pw"))
    else:
        pending = asyncio.ensure_future(credentials.hash_password_async("pw"))
    # The loop keeps serving others while the check runs; it is the one that lets it finish.
    while not stand_in.threads:
        await asyncio.sleep(0.01)
    stand_in.release.set()
    async with asyncio.timeout(10):
        assert await pending
    assert stand_in.threads[0].startswith("argon2")
