"""Secrets sealed at rest (AES-256-GCM) under a key kept outside the database.

A copy of the database alone must not yield the cloud's private keys (nor, later, the DTLS
session secrets of issue #14), so they are stored as ``seal(plaintext, aad)`` blobs and read
back with ``open(blob, aad)``. ``aad`` says what the secret is for (``b"server_keys.private_pem"``)
so that a blob moved into another column does not open there.

The key file (``secret.key`` in the data directory, or ``FERMION_SECRET_KEY_FILE``) holds one
base64 key a line: the last line seals, every line opens, so a key is rotated by appending a
new line (and the old one can go once nothing sealed with it is left). Each blob names the key
that sealed it by a 4-byte id (the start of the key's SHA-256), so a wrong or missing key gives
an error naming the file and the key id instead of garbage. The file is created 0600 on first
use, atomically (``link``), so that processes starting together (``--workers N``, device
workers) all end up with the one key; ``fermion serve`` exports its path to its children.

Blob: ``b"FSB1" | key id (4) | nonce (12) | ciphertext and tag``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fermion.errors import FermionError
from fermion.paths import default_data_dir

KEY_FILE_ENV = "FERMION_SECRET_KEY_FILE"
KEY_FILE_NAME = "secret.key"
MAGIC = b"FSB1"
_ID_LEN = 4
_NONCE_LEN = 12


class SecretBoxError(FermionError):
    """The key file is missing, unreadable, or does not open a sealed secret."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_ID_LEN]


@dataclass(frozen=True)
class SecretBox:
    path: Path
    keys: dict[bytes, bytes]  # key id -> key
    current: bytes  # the id of the key that seals

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_LEN)
        head = MAGIC + self.current
        return head + nonce + AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, head + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        head, kid = blob[: len(MAGIC) + _ID_LEN], blob[len(MAGIC) : len(MAGIC) + _ID_LEN]
        if not blob.startswith(MAGIC) or len(blob) < len(head) + _NONCE_LEN + 16:
            raise SecretBoxError(f"{self.path}: a sealed secret is not in a known format")
        key = self.keys.get(kid)
        if key is None:
            raise SecretBoxError(
                f"{self.path}: holds no key {kid.hex()}, which sealed the secrets in the "
                f"database; restore the key file the database was used with (or set "
                f"{KEY_FILE_ENV} to it)"
            )
        nonce = blob[len(head) : len(head) + _NONCE_LEN]
        try:
            return AESGCM(key).decrypt(nonce, blob[len(head) + _NONCE_LEN :], head + aad)
        except InvalidTag:
            raise SecretBoxError(
                f"{self.path}: key {kid.hex()} does not open a sealed secret "
                f"({aad.decode(errors='replace')}): the data was altered or moved"
            ) from None


def _read(path: Path) -> SecretBox:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SecretBoxError(f"{path}: cannot read the secret key file ({exc.strerror})") from None
    keys: dict[bytes, bytes] = {}
    current = b""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise SecretBoxError(f"{path}: line {number} is not a base64 AES-256 key")
        current = key_id(key)
        keys[current] = key
    if not keys:
        raise SecretBoxError(f"{path}: holds no key")
    return SecretBox(path, keys, current)


def _create(path: Path) -> None:
    """A new key file at ``path`` unless one exists; never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("# Fermion's key for secrets sealed in the database. Keep it, back it up\n")
            out.write("# apart from the database; without it the server keys cannot be read.\n")
            out.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path, *, create: bool = True) -> SecretBox:
    if create and not path.exists():
        try:
            _create(path)
        except OSError as exc:
            raise SecretBoxError(
                f"{path}: cannot create the secret key file ({exc.strerror})"
            ) from None
    return _read(path)


_box: SecretBox | None = None
_path: Path | None = None


def key_file(data_dir: Path | None = None) -> Path:
    """Where this process's key file is: ``FERMION_SECRET_KEY_FILE``, else the data
    directory's ``secret.key``."""
    given = os.environ.get(KEY_FILE_ENV)
    if given:
        return Path(given).expanduser()
    return (data_dir or default_data_dir()) / KEY_FILE_NAME


def use_key_file(path: Path, *, for_children: bool = False) -> None:
    """Seal and open with the key in ``path`` from now on; ``for_children``: and make the
    processes this one starts (API and device workers) use it too."""
    global _box, _path
    if path != _path:
        _box, _path = None, path
    if for_children:
        os.environ[KEY_FILE_ENV] = str(path)


def box() -> SecretBox:
    """The process's box, loaded (and the key file made) on first use."""
    global _box, _path
    if _box is None:
        if _path is None:
            _path = key_file()
        _box = load(_path)
    return _box


def seal(plaintext: bytes, aad: bytes) -> bytes:
    return box().seal(plaintext, aad)


def open(blob: bytes, aad: bytes) -> bytes:
    return box().open(blob, aad)
