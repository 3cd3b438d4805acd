"""secretbox: sealing, rotation by appending a key, and errors that name the key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from fermion.cloud import secretbox
from fermion.cloud.secretbox import SecretBoxError


def test_seal_open_and_the_key_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    box = secretbox.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = box.seal(b"private", b"purpose-a")
    assert b"private" not in blob and blob.startswith(secretbox.MAGIC)
    assert secretbox.load(path).open(blob, b"purpose-a") == b"private"
    with pytest.raises(SecretBoxError, match=f"{path}: key .* does not open"):
        box.open(blob, b"purpose-b")  # moved to another column
    with pytest.raises(SecretBoxError, match="does not open"):
        box.open(blob[:-1] + bytes([blob[-1] ^ 1]), b"purpose-a")  # altered


def test_rotation_by_appending_a_key(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    old_blob = secretbox.load(path).seal(b"old", b"x")
    with path.open("a") as out:
        out.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    rotated = secretbox.load(path)
    new_blob = rotated.seal(b"new", b"x")
    assert new_blob[4:8] != old_blob[4:8]  # sealed with the new key's id
    assert rotated.open(old_blob, b"x") == b"old" and rotated.open(new_blob, b"x") == b"new"


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    blob = secretbox.load(tmp_path / "a.key").seal(b"s", b"x")
    other = tmp_path / "b.key"
    with pytest.raises(SecretBoxError, match=f"{other}: holds no key {blob[4:8].hex()}"):
        secretbox.load(other).open(blob, b"x")
    other.write_text("not base64!\n")
    with pytest.raises(SecretBoxError, match=f"{other}: line 1 is not a base64 AES-256 key"):
        secretbox.load(other)
    with pytest.raises(SecretBoxError, match="cannot read"):
        secretbox.load(tmp_path / "none.key", create=False)
