"""``fermion keys`` on simulated devices and raw DCT dumps, with keys made by real openssl."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from fermion.keys import Algorithm, generate_server_key, public_key_der, public_key_pem

from .clirun import error_line, run, run_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def openssl(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True).stdout


def openssl_fingerprint(path: Path, inform: str | None = None) -> str:
    """SHA256:<b64> of the SPKI DER, computed by openssl, not by Fermion."""
    inform = inform or ("DER" if path.suffix == ".der" else "PEM")
    pubin = ["-pubin"] if path.name.endswith(".pub.pem") else []
    der = openssl(
        "pkey",
        *pubin,
        "-in",
        str(path),
        "-inform",
        inform,
        "-pubout",
        "-outform",
        "DER",
        cwd=path.parent,
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def make_openssl_keys(cwd: Path) -> dict[str, tuple[Path, str]]:
    """Every way particle-cli or a user makes a key with openssl: name -> (file, algorithm)."""
    openssl("genrsa", "-out", "genrsa.pem", "1024", cwd=cwd)  # PKCS#8 PEM on OpenSSL 3
    openssl("rsa", "-in", "genrsa.pem", "-traditional", "-out", "trad.pem", cwd=cwd)  # PKCS#1
    openssl("rsa", "-in", "genrsa.pem", "-outform", "DER", "-out", "rsa8.der", cwd=cwd)
    openssl(
        "rsa", "-in", "genrsa.pem", "-traditional", "-outform", "DER", "-out", "rsa1.der", cwd=cwd
    )
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out", "ecparam.pem", cwd=cwd)
    openssl("ec", "-in", "ecparam.pem", "-outform", "DER", "-out", "sec1.der", cwd=cwd)
    openssl(
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "ecparam.pem",
        "-outform",
        "DER",
        "-out",
        "ec8.der",
        cwd=cwd,
    )
    return {
        "genrsa.pem": (cwd / "genrsa.pem", "rsa"),
        "trad.pem": (cwd / "trad.pem", "rsa"),
        "rsa8.der": (cwd / "rsa8.der", "rsa"),
        "rsa1.der": (cwd / "rsa1.der", "rsa"),
        "ecparam.pem": (cwd / "ecparam.pem", "ec"),
        "sec1.der": (cwd / "sec1.der", "ec"),
        "ec8.der": (cwd / "ec8.der", "ec"),
    }


def test_every_openssl_key_format_round_trips_through_a_device(tmp_path: Path) -> None:
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    [argon] = run_json("sim", "create", "-p", "argon", cwd=tmp_path)
    keys = make_openssl_keys(tmp_path)
    for name, (path, alg) in keys.items():
        device = photon if alg == "rsa" else argon
        expected = openssl_fingerprint(path)
        loaded = run_json("keys", "load", str(path), "--device", device["id"], cwd=tmp_path)
        assert loaded["fingerprint"]["sha256"] == expected, name
        info = run_json("sim", "inspect", device["id"], cwd=tmp_path)
        assert info["device_key"]["fingerprint"]["sha256"] == expected, name
        assert info["public_key_slot"]["fingerprint"]["sha256"] == expected, name
        out = f"saved-{name.replace('.', '-')}"
        saved = run_json("keys", "save", out, "--device", device["id"], cwd=tmp_path)
        assert saved["files"] == {"der": f"{out}.der", "pub_pem": f"{out}.pub.pem"}
        # openssl reads what we saved and agrees on the key.
        assert openssl_fingerprint(tmp_path / f"{out}.der", "DER") == expected, name
        assert openssl_fingerprint(tmp_path / f"{out}.pub.pem") == expected, name


def test_rsa_slot_holds_pkcs1_even_when_given_pkcs8(tmp_path: Path, fermion_home: Path) -> None:
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    keys = make_openssl_keys(tmp_path)
    run("keys", "load", str(keys["rsa8.der"][0]), "--device", photon["id"], cwd=tmp_path)
    dct = (fermion_home / "devices" / photon["id"] / "dct.bin").read_bytes()
    # PKCS#1 RSAPrivateKey: SEQUENCE, INTEGER 0, then the modulus INTEGER (0x02 0x81 0x81).
    # PKCS#8 would have an AlgorithmIdentifier SEQUENCE (0x30 0x0d) after the version.
    assert dct[34:36] == b"\x30\x82"
    assert dct[38:44] == bytes([0x02, 0x01, 0x00, 0x02, 0x81, 0x81])


def test_keys_new_writes_particle_cli_files(tmp_path: Path) -> None:
    made = run_json("keys", "new", "mykey", cwd=tmp_path)
    assert made["algorithm"] == "rsa"
    assert made["files"] == {"pem": "mykey.pem", "pub_pem": "mykey.pub.pem", "der": "mykey.der"}
    assert openssl_fingerprint(tmp_path / "mykey.pem") == made["fingerprint"]["sha256"]
    assert openssl_fingerprint(tmp_path / "mykey.der", "DER") == made["fingerprint"]["sha256"]
    ec = run_json("keys", "new", "eckey", "--algorithm", "ec", cwd=tmp_path)
    assert openssl_fingerprint(tmp_path / "eckey.pub.pem") == ec["fingerprint"]["sha256"]
    line = error_line(run("keys", "new", "mykey", cwd=tmp_path, expect=1))
    assert "mykey.pem: already exists" in line
    [boron] = run_json("sim", "create", "-p", "boron", cwd=tmp_path)
    by_device = run_json("keys", "new", "--device", boron["id"], cwd=tmp_path)
    assert by_device["algorithm"] == "ec"
    assert (tmp_path / f"{boron['id']}.der").exists()
    line = error_line(
        run("keys", "new", "z", "--algorithm", "rsa", "-d", boron["id"], cwd=tmp_path, expect=1)
    )
    assert "needs an EC key" in line
    line = error_line(run("keys", "new", cwd=tmp_path, expect=1))
    assert "give a NAME" in line


def test_brownout_then_load_of_the_saved_key_restores_the_fingerprint(tmp_path: Path) -> None:
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    device_id = photon["id"]
    old = photon["device_key"]["fingerprint"]["sha256"]
    run("keys", "save", "--device", device_id, cwd=tmp_path)  # particle-cli default: <id>.der
    assert (tmp_path / f"{device_id}.der").exists()
    line = error_line(run("keys", "save", "--device", device_id, cwd=tmp_path, expect=1))
    assert "already exists; use --force" in line
    run("keys", "save", "--force", "--device", device_id, cwd=tmp_path)

    after = run_json("sim", "fault", device_id, "--brownout", cwd=tmp_path)
    regenerated = after["device_key"]["fingerprint"]["sha256"]
    assert regenerated != old

    loaded = run_json("keys", "load", device_id, "--device", device_id, cwd=tmp_path)
    assert loaded["fingerprint"]["sha256"] == old
    assert loaded["backup"] == f"backup_rsa_{device_id}.der"
    assert openssl_fingerprint(tmp_path / f"backup_rsa_{device_id}.der", "DER") == regenerated
    info = run_json("sim", "inspect", device_id, cwd=tmp_path)
    assert info["device_key"]["fingerprint"]["sha256"] == old


def test_wrong_key_type_is_refused_and_nothing_is_written(
    tmp_path: Path, fermion_home: Path
) -> None:
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    [argon] = run_json("sim", "create", "-p", "argon", cwd=tmp_path)
    keys = make_openssl_keys(tmp_path)
    dct_path = fermion_home / "devices" / photon["id"] / "dct.bin"
    before = dct_path.read_bytes()
    line = error_line(
        run("keys", "load", str(keys["ecparam.pem"][0]), "-d", photon["id"], cwd=tmp_path, expect=1)
    )
    assert "ecparam.pem" in line and "EC key" in line and photon["id"] in line and "RSA" in line
    assert dct_path.read_bytes() == before
    assert not list(tmp_path.glob("backup_*"))
    line = error_line(
        run("keys", "load", str(keys["trad.pem"][0]), "-d", argon["id"], cwd=tmp_path, expect=1)
    )
    assert "RSA key" in line and argon["id"] in line and "needs EC" in line

    corrupt = tmp_path / "corrupt.der"
    corrupt.write_bytes(b"\x30\x82\x02\x5c" + b"\x00" * 50)
    line = error_line(run("keys", "load", "corrupt", "-d", photon["id"], cwd=tmp_path, expect=1))
    assert "corrupt.der" in line
    public_only = tmp_path / "pub.der"
    public_only.write_bytes(public_key_der(generate_server_key(Algorithm.RSA).public_key()))
    line = error_line(run("keys", "load", "pub", "-d", photon["id"], cwd=tmp_path, expect=1))
    assert "public key only" in line
    openssl("genrsa", "-out", "big.pem", "2048", cwd=tmp_path)
    line = error_line(run("keys", "load", "big.pem", "-d", photon["id"], cwd=tmp_path, expect=1))
    assert "2048 bits" in line
    assert dct_path.read_bytes() == before


def test_dct_dump_file(tmp_path: Path) -> None:
    keys = make_openssl_keys(tmp_path)
    dump = tmp_path / "dct.bin"
    dump.write_bytes(b"\xff" * 16384)
    line = error_line(run("keys", "save", "x", "--dct", str(dump), cwd=tmp_path, expect=1))
    assert "--platform" in line
    run(
        "keys",
        "load",
        str(keys["trad.pem"][0]),
        "--dct",
        str(dump),
        "--platform",
        "photon",
        cwd=tmp_path,
    )
    assert dump.stat().st_size == 16384
    raw = dump.read_bytes()
    assert raw[34] == 0x30 and raw[3106] == 0xFF
    # The slot now tells the transport: no --platform needed.
    saved = run_json("keys", "save", "fromdump", "--dct", str(dump), cwd=tmp_path)
    assert saved["transport"] == "tcp"
    assert openssl_fingerprint(tmp_path / "fromdump.der", "DER") == openssl_fingerprint(
        keys["trad.pem"][0]
    )
    # A struct-sized dump works too and keeps its size.
    small = tmp_path / "small.bin"
    small.write_bytes(b"\xff" * 8391)
    run(
        "keys",
        "load",
        str(keys["sec1.der"][0]),
        "--dct",
        str(small),
        "--platform",
        "argon",
        cwd=tmp_path,
    )
    assert small.stat().st_size == 8391
    assert small.read_bytes()[3106] == 0x30


def test_dct_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    make_openssl_keys(tmp_path)
    dump = tmp_path / "odd.bin"
    dump.write_bytes(b"\xff" * 12345)
    line = error_line(
        run(
            "keys",
            "load",
            "trad.pem",
            "--dct",
            str(dump),
            "--platform",
            "photon",
            cwd=tmp_path,
            expect=1,
        )
    )
    assert str(dump) in line and "12345 bytes" in line
    assert dump.read_bytes() == b"\xff" * 12345
    line = error_line(
        run("keys", "address", "--dct", str(tmp_path / "nope.bin"), cwd=tmp_path, expect=1)
    )
    assert "nope.bin" in line


def test_corrupt_slot_save_message(tmp_path: Path) -> None:
    dump = tmp_path / "dct.bin"
    raw = bytearray(b"\xff" * 16384)
    raw[34 : 34 + 20] = b"\x30\x82\x02\x5d" + b"\x13" * 16
    dump.write_bytes(bytes(raw))
    line = error_line(
        run(
            "keys",
            "save",
            "bad",
            "--dct",
            str(dump),
            "--platform",
            "photon",
            cwd=tmp_path,
            expect=1,
        )
    )
    assert "usually means you had a corrupt key on the device" in line
    assert not (tmp_path / "bad.der").exists()


def test_keys_server_out_file_by_hand(tmp_path: Path) -> None:
    server = generate_server_key(Algorithm.RSA)
    der = public_key_der(server.public_key())
    (tmp_path / "srv.pub.pem").write_bytes(public_key_pem(server.public_key()))
    run(
        "keys",
        "server",
        "srv.pub.pem",
        "--host",
        "127.0.0.1",
        "--port",
        "5683",
        "--out",
        "out.der",
        cwd=tmp_path,
    )
    data = (tmp_path / "out.der").read_bytes()
    assert len(data) == 512
    assert data[:294] == der
    assert data[294:384] == b"\xff" * 90
    assert data[384:390] == bytes([0, 4, 127, 0, 0, 1])
    assert data[390:450] == b"\xff" * 60
    assert data[450:452] == bytes([0x16, 0x33])
    assert data[452:] == b"\xff" * 60
    # Without --out and without a device: particle-cli's name.
    run("keys", "server", "srv.pub.pem", "--host", "cloud.example.com", cwd=tmp_path)
    named = (tmp_path / "srv.pub-cloud_example_com-rsa.der").read_bytes()
    assert named[384:386] == bytes([1, 17]) and named[386:403] == b"cloud.example.com"
    assert named[450:452] == b"\xff\xff"
    run("keys", "server", "srv.pub.pem", cwd=tmp_path)
    assert (tmp_path / "srv.pub-padded.der").read_bytes()[384:] == b"\xff" * 128


def test_keys_server_and_address_on_a_device(tmp_path: Path) -> None:
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    [electron] = run_json("sim", "create", "-p", "electron", cwd=tmp_path)
    assert run_json("keys", "address", "-d", photon["id"], cwd=tmp_path) == {
        "host": "device.spark.io",
        "port": 5683,
        "source": "backup",
        "transport": "tcp",
        "type": "domain",
    }
    address = run_json("keys", "address", "-d", electron["id"], cwd=tmp_path)
    assert (address["host"], address["port"]) == ("$id.udp.particle.io", 5684)

    server = generate_server_key(Algorithm.RSA)
    (tmp_path / "srv.pub.pem").write_bytes(public_key_pem(server.public_key()))
    run(
        "keys",
        "server",
        "srv.pub.pem",
        "--host",
        "127.0.0.1",
        "--port",
        "5683",
        "-d",
        photon["id"],
        cwd=tmp_path,
    )
    address = run_json("keys", "address", "-d", photon["id"], cwd=tmp_path)
    assert (address["host"], address["port"], address["source"]) == ("127.0.0.1", 5683, "dct")
    info = run_json("sim", "inspect", photon["id"], cwd=tmp_path)
    assert info["key_errors"]["mask"] == 0
    assert info["server_key"]["is_backup_cloud"] is False

    # After a brownout the device points at the backup cloud again; `keys server` repairs it.
    assert (
        run_json("sim", "fault", photon["id"], "--brownout", cwd=tmp_path)["key_errors"]["mask"]
        == 5
    )
    # --builtin: the built-in (backup cloud) key, as particle-cli's default asset. (Without FILE
    # or --builtin, `keys server` asks the cloud the CLI is logged in to.)
    run("keys", "server", "--builtin", "--host", "127.0.0.1", "-d", photon["id"], cwd=tmp_path)
    info = run_json("sim", "inspect", photon["id"], cwd=tmp_path)
    assert info["key_errors"]["mask"] == 0 and info["server_key"]["is_backup_cloud"] is True

    ec_server = tmp_path / "ec.pub.pem"
    ec_server.write_bytes(public_key_pem(generate_server_key(Algorithm.EC).public_key()))
    line = error_line(
        run("keys", "server", str(ec_server), "-d", photon["id"], cwd=tmp_path, expect=1)
    )
    assert "ec.pub.pem" in line and "needs RSA" in line


def test_keys_protocol_electron_only(tmp_path: Path, fermion_home: Path) -> None:
    [electron] = run_json("sim", "create", "-p", "electron", cwd=tmp_path)
    [photon] = run_json("sim", "create", "-p", "photon", cwd=tmp_path)
    assert run_json("keys", "protocol", "-d", electron["id"], cwd=tmp_path) == {
        "transport": "udp",
        "cloud_transport": 255,
    }
    assert run_json("keys", "protocol", "tcp", "-d", electron["id"], cwd=tmp_path) == {
        "transport": "tcp",
        "cloud_transport": 0,
    }
    dct = (fermion_home / "devices" / electron["id"] / "dct.bin").read_bytes()
    assert dct[2977] == 0x00
    info = run_json("sim", "inspect", electron["id"], cwd=tmp_path)
    assert info["transport"] == "tcp" and info["device_key"]["algorithm"] == "rsa"
    run("keys", "protocol", "udp", "-d", electron["id"], cwd=tmp_path)
    info = run_json("sim", "inspect", electron["id"], cwd=tmp_path)
    # Back on UDP, the EC key made at creation is still there.
    assert info["device_key"]["fingerprint"] == electron["device_key"]["fingerprint"]
    line = error_line(run("keys", "protocol", "tcp", "-d", photon["id"], cwd=tmp_path, expect=1))
    assert "Electron only" in line and "photon" in line
    line = error_line(run("keys", "protocol", "-d", "f" * 24, cwd=tmp_path, expect=1))
    assert "no such simulated device" in line
