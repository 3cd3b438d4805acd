"""Reading and writing every key format a user will hand us."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fermion.errors import KeyFormatError
from fermion.keys import (
    Algorithm,
    fingerprint,
    generate_device_key,
    generate_server_key,
    key_file_paths,
    load_key,
    load_key_file,
    private_key_der,
    public_key_der,
    require_algorithm,
    require_device_key_size,
    write_new_key_files,
    write_saved_key_files,
)

OPENSSL = shutil.which("openssl")


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return generate_device_key(Algorithm.RSA)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return generate_device_key(Algorithm.EC)  # type: ignore[return-value]


def test_device_and_server_key_sizes() -> None:
    device = generate_device_key(Algorithm.RSA)
    assert isinstance(device, rsa.RSAPrivateKey)
    assert device.key_size == 1024
    assert device.public_key().public_numbers().e == 65537
    assert len(public_key_der(device.public_key())) == 162
    server = generate_server_key(Algorithm.RSA)
    assert server.key_size == 2048  # type: ignore[union-attr]
    assert len(public_key_der(server.public_key())) == 294
    ec_device = generate_device_key(Algorithm.EC)
    assert isinstance(ec_device.curve, ec.SECP256R1)  # type: ignore[union-attr]
    assert len(public_key_der(ec_device.public_key())) == 91


def test_rsa_private_der_is_pkcs1(rsa_key: rsa.RSAPrivateKey) -> None:
    der = private_key_der(rsa_key)
    # PKCS#1 RSAPrivateKey: SEQUENCE { INTEGER 0, INTEGER n ... }; Device OS copies the modulus
    # from offset 11 of this structure, so the modulus must start right there.
    modulus = rsa_key.private_numbers().public_numbers.n.to_bytes(128, "big")
    assert der[:2] == b"\x30\x82"
    assert der[4:7] == b"\x02\x01\x00"
    assert der[11 : 11 + 128] == modulus


ALL_RSA_ENCODINGS = [
    ("pem", "pkcs1", serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL),
    ("pem", "pkcs8", serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
    ("der", "pkcs1", serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL),
    ("der", "pkcs8", serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
]


@pytest.mark.parametrize(("armour", "form", "encoding", "fmt"), ALL_RSA_ENCODINGS)
@pytest.mark.parametrize("alg", [Algorithm.RSA, Algorithm.EC])
def test_private_formats_round_trip(
    alg: Algorithm,
    armour: str,
    form: str,
    encoding: serialization.Encoding,
    fmt: serialization.PrivateFormat,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    key = rsa_key if alg is Algorithm.RSA else ec_key
    blob = key.private_bytes(encoding, fmt, serialization.NoEncryption())
    loaded = load_key(blob, f"{alg}-{armour}-{form}")
    assert loaded.private is not None
    assert loaded.algorithm is alg
    assert loaded.fingerprint == fingerprint(key)


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_rsa_public_formats(
    rsa_key: rsa.RSAPrivateKey, encoding: serialization.Encoding, fmt: serialization.PublicFormat
) -> None:
    blob = rsa_key.public_key().public_bytes(encoding, fmt)
    loaded = load_key(blob)
    assert loaded.private is None
    assert loaded.fingerprint == fingerprint(rsa_key)


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_ec_public_spki(
    ec_key: ec.EllipticCurvePrivateKey, encoding: serialization.Encoding
) -> None:
    blob = ec_key.public_key().public_bytes(
        encoding, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_key(blob).fingerprint == fingerprint(ec_key)


@pytest.mark.parametrize("filler", [b"\xff", b"\x00"])
def test_padded_dct_slot(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, filler: bytes
) -> None:
    rsa_slot = private_key_der(rsa_key).ljust(612, filler)
    ec_slot = private_key_der(ec_key).ljust(192, filler)
    assert load_key(rsa_slot, "slot").fingerprint == fingerprint(rsa_key)
    assert load_key(ec_slot, "slot").fingerprint == fingerprint(ec_key)


def test_fingerprint_is_sha256_of_spki(rsa_key: rsa.RSAPrivateKey) -> None:
    digest = hashlib.sha256(public_key_der(rsa_key.public_key())).digest()
    fp = fingerprint(rsa_key)
    assert fp.sha256 == "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    assert fp.hex == digest.hex()
    assert fp.short == digest[:8].hex()
    assert fingerprint(rsa_key.public_key()) == fp


def test_particle_cli_file_names(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    paths = write_new_key_files(rsa_key, tmp_path / "mydevice")
    assert {p.name for p in paths.values()} == {"mydevice.pem", "mydevice.pub.pem", "mydevice.der"}
    for path in paths.values():
        assert load_key_file(path).fingerprint == fingerprint(rsa_key)
    assert (tmp_path / "mydevice.pem").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert (tmp_path / "mydevice.pem").stat().st_mode & 0o077 == 0
    # Naming the key by any of its files gives the same base name.
    assert key_file_paths(tmp_path / "mydevice.pub.pem") == paths


def test_saved_key_files(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    slot = private_key_der(ec_key).ljust(192, b"\xff")
    paths = write_saved_key_files(slot, tmp_path / "device")
    assert sorted(p.name for p in paths.values()) == ["device.der", "device.pub.pem"]
    assert load_key_file(paths["der"]).fingerprint == fingerprint(ec_key)
    assert load_key_file(paths["pub_pem"]).private is None


def test_saving_a_corrupt_slot_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError, match="device key"):
        write_saved_key_files(b"\x30\x82\x02\x5c" + b"\x00" * 608, tmp_path / "device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
@pytest.mark.parametrize(
    "commands",
    [
        [["genrsa", "-out", "k.pem", "1024"]],
        [
            ["genrsa", "-out", "p.pem", "1024"],
            ["rsa", "-in", "p.pem", "-traditional", "-out", "k.pem"],
        ],
        [["ecparam", "-name", "prime256v1", "-genkey", "-out", "k.pem"]],
        [
            ["genrsa", "-out", "p.pem", "1024"],
            ["rsa", "-in", "p.pem", "-outform", "DER", "-out", "k.pem"],
        ],
        [["genrsa", "-out", "p.pem", "1024"], ["rsa", "-in", "p.pem", "-pubout", "-out", "k.pem"]],
        [
            ["ecparam", "-name", "prime256v1", "-genkey", "-out", "p.pem"],
            ["ec", "-in", "p.pem", "-outform", "DER", "-out", "k.pem"],
        ],
    ],
    ids=["genrsa", "rsa-traditional", "ecparam", "rsa-der", "rsa-pubout", "ec-der"],
)
def test_keys_made_by_openssl(tmp_path: Path, commands: list[list[str]]) -> None:
    for args in commands:
        subprocess.run([OPENSSL, *args], cwd=tmp_path, check=True, capture_output=True)
    loaded = load_key_file(tmp_path / "k.pem")
    # openssl's own view of the public key must give the same fingerprint.
    der = subprocess.run(
        [
            OPENSSL,
            "pkey",
            "-in",
            "k.pem",
            *(["-pubin"] if loaded.private is None else []),
            "-inform",
            "DER" if (tmp_path / "k.pem").read_bytes()[:1] == b"\x30" else "PEM",
            "-pubout",
            "-outform",
            "DER",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    ).stdout
    assert loaded.fingerprint.digest == hashlib.sha256(der).digest()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_openssl_reads_what_we_write(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    write_new_key_files(rsa_key, tmp_path / "dev")
    out = subprocess.run(
        [OPENSSL, "rsa", "-in", "dev.der", "-inform", "DER", "-pubout", "-outform", "DER"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    ).stdout
    assert out == public_key_der(rsa_key.public_key())


def test_errors_name_the_source_and_reason(tmp_path: Path) -> None:
    cases = {
        b"": "empty",
        b"\xff" * 612: "erased",
        b"hello world": "not a PEM or DER key",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n": "device.pub.pem",
        b"x" * 20000: "too large",
    }
    for blob, needle in cases.items():
        with pytest.raises(KeyFormatError) as info:
            load_key(blob, "device.pub.pem")
        assert "device.pub.pem" in str(info.value)
        assert needle in str(info.value)
    with pytest.raises(KeyFormatError, match="no such file"):
        load_key_file(tmp_path / "missing.pem")


def test_unsupported_keys_are_refused() -> None:
    other_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFormatError, match="P-256"):
        load_key(other_curve, "k")
    edwards = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFormatError, match="not supported"):
        load_key(edwards, "k")
    encrypted = generate_device_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(KeyFormatError, match="encrypted"):
        load_key(encrypted, "k")


def test_algorithm_and_size_checks(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    ec_loaded = load_key(private_key_der(ec_key))
    with pytest.raises(KeyFormatError, match="EC key but a TCP device needs RSA"):
        require_algorithm(ec_loaded, Algorithm.RSA, "k.der", "a TCP device")
    big = load_key(public_key_der(generate_server_key().public_key()))
    with pytest.raises(KeyFormatError, match="2048 bits"):
        require_device_key_size(big, "big.pem")
    require_device_key_size(load_key(private_key_der(rsa_key)), "ok.der")
    assert Algorithm.parse("ECC") is Algorithm.EC
    assert Algorithm.EC.api_name == "ecc"
    with pytest.raises(KeyFormatError, match="algorithm"):
        Algorithm.parse("dsa")
