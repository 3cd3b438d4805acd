from __future__ import annotations

import re

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
