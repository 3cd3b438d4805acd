"""Key material: generate, read any format a user hands us, fingerprint, write files.

Device keys are RSA-1024 (TCP devices) or EC P-256 (UDP devices); server keys are RSA-2048
(TCP) or EC P-256 (UDP). ``load_key`` reads PEM or DER, PKCS#1, PKCS#8, SubjectPublicKeyInfo
or SEC1, private or public, and raw DCT key slots (DER followed by 0xFF or 0x00 padding).

RSA private keys are written as PKCS#1 DER because Device OS reads the modulus at fixed offsets
of a PKCS#1 ``RSAPrivateKey``; a PKCS#8 blob in the slot would give the device a garbage key.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fermion.errors import KeyFormatError
from fermion.fsutil import atomic_write

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

DEVICE_RSA_BITS = 1024
SERVER_RSA_BITS = 2048
RSA_EXPONENT = 65537
# Keys larger than this are not device or server keys of this protocol; refusing early keeps a
# hostile upload from costing us a multi-second parse.
MAX_KEY_BYTES = 16 * 1024


class Algorithm(StrEnum):
    """Key algorithm; the value is the name particle-cli's files and commands use."""

    RSA = "rsa"
    EC = "ec"

    @property
    def api_name(self) -> str:
        """The name ``POST /v1/provisioning`` uses (``rsa`` or ``ecc``)."""
        return "ecc" if self is Algorithm.EC else "rsa"

    @classmethod
    def parse(cls, value: str) -> Algorithm:
        """Accept ``rsa``, ``ec``, ``ecc`` or ``ecdsa`` in any case."""
        lowered = value.strip().lower()
        if lowered == "rsa":
            return cls.RSA
        if lowered in {"ec", "ecc", "ecdsa"}:
            return cls.EC
        raise KeyFormatError(f"algorithm: {value!r} is not one of rsa, ec (ecc)")

    @classmethod
    def of(cls, key: PrivateKey | PublicKey) -> Algorithm:
        if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            return cls.RSA
        return cls.EC


def generate_device_key(algorithm: Algorithm = Algorithm.RSA) -> PrivateKey:
    """A new device key as Device OS makes one: RSA-1024 e=65537, or EC P-256."""
    if algorithm is Algorithm.RSA:
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=DEVICE_RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def generate_server_key(algorithm: Algorithm = Algorithm.RSA) -> PrivateKey:
    """A new cloud key: RSA-2048 e=65537 (the device hard-codes the exponent), or EC P-256."""
    if algorithm is Algorithm.RSA:
        return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=SERVER_RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class LoadedKey:
    """What a file or slot held: always a public key, and the private key when there was one."""

    public: PublicKey
    private: PrivateKey | None = None

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.of(self.public)

    @property
    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.public)


def _trim_der(data: bytes) -> bytes:
    """Cut a DER SEQUENCE out of a padded buffer (a DCT slot is DER then 0xFF or 0x00 filler).

    Returns ``data`` unchanged when it does not start with a definite-length SEQUENCE header.
    """
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        header, length = 2, first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or len(data) < 2 + count:
            return data
        header = 2 + count
        length = int.from_bytes(data[2:header], "big")
    end = header + length
    if end > len(data):
        return data
    return data[:end]


def _looks_pem(data: bytes) -> bool:
    return b"-----BEGIN" in data[:4096]


def load_key(data: bytes, source: str = "key") -> LoadedKey:
    """Read a key in any supported format; ``source`` names it in error messages.

    Raises ``KeyFormatError`` naming ``source`` and the reason when the bytes are not a key we can
    use (garbage, truncated, encrypted, an unsupported curve or algorithm).
    """
    if not data:
        raise KeyFormatError(f"{source}: empty, expected a PEM or DER key")
    if len(data) > MAX_KEY_BYTES:
        raise KeyFormatError(f"{source}: {len(data)} bytes is too large for a key")
    if data[:1] == b"\xff":
        raise KeyFormatError(f"{source}: erased (starts with 0xFF), no key is stored there")

    if _looks_pem(data):
        candidates = [data.strip()]
        loaders = (
            serialization.load_pem_private_key,
            serialization.load_pem_public_key,
        )
    else:
        trimmed = _trim_der(data)
        candidates = [trimmed] if trimmed == data else [trimmed, data]
        loaders = (
            serialization.load_der_private_key,
            serialization.load_der_public_key,
        )

    reason = "not a PEM or DER key"
    for blob in candidates:
        for loader in loaders:
            try:
                if loader in (
                    serialization.load_pem_private_key,
                    serialization.load_der_private_key,
                ):
                    private = loader(blob, password=None)  # type: ignore[operator]
                    return _accept(private.public_key(), private, source)
                public = loader(blob)  # type: ignore[operator]
                return _accept(public, None, source)
            except TypeError as exc:
                # cryptography raises TypeError for an encrypted key without a password.
                if "password" in str(exc).lower() or "encrypted" in str(exc).lower():
                    raise KeyFormatError(
                        f"{source}: the key is encrypted; export it without a passphrase"
                    ) from None
                reason = str(exc)
            except UnsupportedAlgorithm as exc:
                reason = f"unsupported key type ({exc})"
            except ValueError:
                continue
    raise KeyFormatError(f"{source}: {reason}")


def _accept(public: object, private: object | None, source: str) -> LoadedKey:
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 512 or public.key_size > 8192:
            raise KeyFormatError(f"{source}: RSA key of {public.key_size} bits is not usable")
        return LoadedKey(public=public, private=private)  # type: ignore[arg-type]
    if isinstance(public, ec.EllipticCurvePublicKey):
        if not isinstance(public.curve, ec.SECP256R1):
            raise KeyFormatError(
                f"{source}: EC key on curve {public.curve.name}; devices use prime256v1 (P-256)"
            )
        return LoadedKey(public=public, private=private)  # type: ignore[arg-type]
    raise KeyFormatError(
        f"{source}: {type(public).__name__.lstrip('_')} keys are not supported; use RSA or EC P-256"
    )


def load_key_file(path: Path) -> LoadedKey:
    """``load_key`` on a file, with the file's name in every error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KeyFormatError(f"{path}: is a directory, expected a key file") from None
    except OSError as exc:
        raise KeyFormatError(f"{path}: cannot read ({exc.strerror})") from None
    return load_key(data, source=str(path))


def load_public_key(data: bytes, source: str = "key") -> PublicKey:
    return load_key(data, source).public


def require_algorithm(key: LoadedKey, expected: Algorithm, source: str, why: str) -> None:
    """Refuse a key of the wrong algorithm with a message that says which one is needed."""
    if key.algorithm is not expected:
        raise KeyFormatError(
            f"{source}: is an {key.algorithm.value.upper()} key but {why} needs "
            f"{expected.value.upper()}"
        )


def require_device_key_size(key: LoadedKey, source: str) -> None:
    """A TCP device key must be RSA-1024: the handshake carries exactly 162 bytes of it."""
    if isinstance(key.public, rsa.RSAPublicKey) and key.public.key_size != DEVICE_RSA_BITS:
        raise KeyFormatError(
            f"{source}: RSA key of {key.public.key_size} bits; device keys are "
            f"{DEVICE_RSA_BITS}-bit"
        )


# --- encodings -------------------------------------------------------------------------------


def private_key_der(key: PrivateKey) -> bytes:
    """The private key as a device stores it: PKCS#1 for RSA, SEC1 for EC."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def private_key_pem(key: PrivateKey) -> bytes:
    """PEM as ``openssl genrsa`` / ``openssl ecparam -genkey`` write it (traditional format)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_der(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER: 162 bytes for RSA-1024, 294 for RSA-2048, 91 for P-256."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- fingerprints ----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Fingerprint:
    """SHA-256 of the SubjectPublicKeyInfo DER."""

    digest: bytes

    @property
    def sha256(self) -> str:
        """``SHA256:<base64 without padding>``, as OpenSSH prints fingerprints."""
        return "SHA256:" + base64.b64encode(self.digest).decode().rstrip("=")

    @property
    def hex(self) -> str:
        return self.digest.hex()

    @property
    def short(self) -> str:
        """The first 8 bytes in hex: enough to tell two keys apart at a glance."""
        return self.digest[:8].hex()

    def __str__(self) -> str:
        return self.sha256


def fingerprint(key: PublicKey | PrivateKey) -> Fingerprint:
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    return Fingerprint(hashlib.sha256(public_key_der(public)).digest())


def fingerprint_der(spki_der: bytes) -> Fingerprint:
    """Fingerprint of a public key already in SubjectPublicKeyInfo DER."""
    return Fingerprint(hashlib.sha256(spki_der).digest())


# --- files, named the way particle-cli names them -------------------------------------------


def key_file_paths(name: str | Path) -> dict[str, Path]:
    """``<name>.pem``, ``<name>.pub.pem`` and ``<name>.der`` for a base name."""
    base = Path(name)
    for suffix in (".pub.pem", ".pem", ".der"):
        if base.name.endswith(suffix):
            base = base.with_name(base.name[: -len(suffix)])
            break
    return {
        "pem": base.with_name(base.name + ".pem"),
        "pub_pem": base.with_name(base.name + ".pub.pem"),
        "der": base.with_name(base.name + ".der"),
    }


def write_new_key_files(key: PrivateKey, name: str | Path) -> dict[str, Path]:
    """What ``keys new`` writes: ``<name>.pem``, ``<name>.pub.pem``, ``<name>.der``."""
    paths = key_file_paths(name)
    atomic_write(paths["pem"], private_key_pem(key), mode=0o600)
    atomic_write(paths["pub_pem"], public_key_pem(key.public_key()))
    atomic_write(paths["der"], private_key_der(key), mode=0o600)
    return paths


def write_saved_key_files(
    slot: bytes, name: str | Path, source: str = "device key"
) -> dict[str, Path]:
    """What ``keys save`` writes: the raw slot as ``<name>.der`` and ``<name>.pub.pem``.

    The slot is validated first so that a corrupt key on the device is reported, not saved.
    """
    loaded = load_key(slot, source)
    if loaded.private is None:
        raise KeyFormatError(f"{source}: holds a public key only, expected a private key")
    paths = key_file_paths(name)
    atomic_write(paths["der"], private_key_der(loaded.private), mode=0o600)
    atomic_write(paths["pub_pem"], public_key_pem(loaded.public))
    return {"der": paths["der"], "pub_pem": paths["pub_pem"]}


__all__ = [
    "Algorithm",
    "Fingerprint",
    "LoadedKey",
    "PrivateKey",
    "PublicKey",
    "fingerprint",
    "fingerprint_der",
    "generate_device_key",
    "generate_server_key",
    "key_file_paths",
    "load_key",
    "load_key_file",
    "load_public_key",
    "private_key_der",
    "private_key_pem",
    "public_key_der",
    "public_key_pem",
    "require_algorithm",
    "require_device_key_size",
    "write_new_key_files",
    "write_saved_key_files",
]
