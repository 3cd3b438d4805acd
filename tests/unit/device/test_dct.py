"""The DCT image: field table, dump sizes, and bytes at the documented offsets (by hand)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fermion.device.dct import (
    GEN2,
    GEN3,
    SECTOR_SIZE,
    STRUCT_SIZE,
    DctImage,
    decode_public_key_slot,
    read_claim_code,
    read_claimed,
    read_cloud_transport,
    read_device_id,
    read_server_address,
    write_claim_code,
    write_claimed,
    write_cloud_transport,
    write_device_id,
    write_private_key,
    write_public_key,
    write_server_address,
    write_server_key,
    write_server_key_file,
)
from fermion.errors import DctError
from fermion.keys import Algorithm, generate_device_key, generate_server_key
from fermion.keys.serverfile import ServerAddress, Transport, encode_server_key_file

# Reference §2.1, typed in from the table (not imported from Fermion).
EXPECTED = {
    "system_flags": (0, 32),
    "version": (32, 2),
    "device_private_key": (34, 1216),
    "device_public_key": (1250, 384),
    "ip_config": (1634, 24),
    "unused": (1658, 95),
    "ota_update_flag": (1753, 1),
    "feature_flags": (1754, 4),
    "country_code": (1758, 4),
    "claim_code": (1762, 63),
    "claimed": (1825, 1),
    "ssid_prefix": (1826, 26),
    "device_code": (1852, 6),
    "version_string": (1858, 32),
    "dns_resolve": (1890, 128),
    "reserved1": (2018, 64),
    "server_public_key": (2082, 768),
    "server_address": (2466, 128),
    "padding": (2850, 2),
    "flash_modules": (2852, 100),
    "product_store": (2952, 24),
    "antenna_selection": (2976, 1),
    "cloud_transport": (2977, 1),
    "alt_device_public_key": (2978, 128),
    "alt_device_private_key": (3106, 192),
    "alt_server_public_key": (3298, 192),
    "alt_server_address": (3490, 128),
    "device_id": (3618, 12),
    "radio_flags": (3630, 1),
    "mode_button_mirror": (3631, 32),
    "led_mirror": (3663, 96),
    "led_theme": (3759, 64),
    "eap_config": (3823, 4296),
    "device_secret": (8119, 15),
    "power_config": (8134, 32),
    "ext_low_speed_clock_disable": (8166, 4),
    "reserved2": (8170, 221),
}


def _der_pkcs1(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_every_field_of_the_reference_is_in_the_gen2_table() -> None:
    table = {f.name: (f.offset, f.size) for f in GEN2.fields}
    assert table == EXPECTED


@pytest.mark.parametrize("layout", [GEN2, GEN3])
def test_fields_tile_the_struct_exactly(layout) -> None:  # type: ignore[no-untyped-def]
    position = 0
    for item in layout.fields:
        if item.overlay:
            continue
        assert item.offset == position, item.name
        position = item.end
    assert position == STRUCT_SIZE == 8391


def test_gen3_tail_offsets() -> None:
    table = {f.name: f.offset for f in GEN3.fields}
    assert table["device_secret"] == 8119
    assert table["setup_done"] == 8134
    assert table["ncp_id"] == 8135
    assert table["power_config"] == 8139
    assert table["radio_antenna"] == 8171
    assert table["reserved2"] == 8172


def test_erased_image_is_all_ff_sector() -> None:
    image = DctImage.erased()
    assert len(image) == SECTOR_SIZE == 16384
    assert image.to_bytes() == b"\xff" * 16384
    assert image.read("device_private_key") == b"\xff" * 1216


@pytest.mark.parametrize("size", [8391, 16384])
def test_dump_of_struct_or_sector_size_is_accepted_and_keeps_its_size(
    tmp_path: Path, size: int
) -> None:
    path = tmp_path / "dct.bin"
    path.write_bytes(b"\xff" * size)
    image = DctImage.from_file(path)
    image.write("claimed", b"1")
    image.save(path)
    assert path.stat().st_size == size
    assert path.read_bytes()[1825] == ord("1")


@pytest.mark.parametrize("size", [0, 1, 8390, 8392, 16383, 16385, 32768])
def test_dump_of_another_size_is_refused_naming_file_and_size(tmp_path: Path, size: int) -> None:
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\xff" * size)
    with pytest.raises(DctError) as caught:
        DctImage.from_file(path)
    assert str(path) in str(caught.value)
    assert f"{size} bytes" in str(caught.value)


def test_missing_dump_file(tmp_path: Path) -> None:
    with pytest.raises(DctError, match="no such DCT file"):
        DctImage.from_file(tmp_path / "nope.bin")


def test_write_by_name_checks_size() -> None:
    image = DctImage.erased()
    with pytest.raises(DctError, match="device_id is 12 bytes, got 11"):
        image.write("device_id", b"\x00" * 11)
    with pytest.raises(DctError, match="no such field"):
        image.read("device_pirvate_key")
    image.write("device_id", bytes(range(12)))
    assert image.read("device_id") == bytes(range(12))


def test_region_outside_image_is_refused() -> None:
    image = DctImage(b"\xff" * STRUCT_SIZE)
    with pytest.raises(DctError, match="outside"):
        image.read_region(8390, 2)


def test_tcp_image_bytes_at_the_documented_offsets() -> None:
    device = generate_device_key(Algorithm.RSA)
    server = generate_server_key(Algorithm.RSA)
    assert isinstance(device, rsa.RSAPrivateKey)
    image = DctImage.erased()
    write_private_key(image, Transport.TCP, _der_pkcs1(device))
    write_public_key(image, Transport.TCP, device.public_key())
    write_server_key_file(
        image,
        Transport.TCP,
        encode_server_key_file(server.public_key(), "127.0.0.1", 5683),  # type: ignore[arg-type]
    )
    write_cloud_transport(image, 0x00)
    write_claim_code(image, "ABCDEF")
    write_claimed(image, True)
    write_device_id(image, "0123456789abcdef01234567")
    raw = image.to_bytes()

    priv = _der_pkcs1(device)
    assert raw[34 : 34 + len(priv)] == priv
    assert raw[34 + len(priv) : 34 + 612] == b"\xff" * (612 - len(priv))
    assert raw[34 + 612 : 1250] == b"\xff" * (1250 - 646)  # the rest of the 1216-byte field
    pub = _spki(device.public_key())
    assert len(pub) == 162
    assert raw[1250:1412] == pub
    assert raw[1412:1634] == b"\x00" * 222
    server_der = _spki(server.public_key())
    assert len(server_der) == 294
    assert raw[2082:2376] == server_der
    assert raw[2376:2466] == b"\xff" * 90
    assert raw[2466:2472] == bytes([0, 4, 127, 0, 0, 1])
    assert raw[2532:2534] == bytes([0x16, 0x33])  # 5683 big-endian at 2466 + 66
    assert raw[2977] == 0x00
    assert raw[1762:1768] == b"ABCDEF"
    assert raw[1768:1825] == b"\x00" * 57
    assert raw[1825] == 0x31
    assert raw[3618:3630] == bytes.fromhex("0123456789abcdef01234567")
    # Nothing else was touched.
    assert raw[0:34] == b"\xff" * 34
    assert raw[3630:] == b"\xff" * (16384 - 3630)

    assert read_cloud_transport(image) == 0
    assert read_claim_code(image) == "ABCDEF"
    assert read_claimed(image) is True
    assert read_device_id(image) == "0123456789abcdef01234567"
    assert read_server_address(image, Transport.TCP) == ServerAddress("127.0.0.1", 5683)


def test_udp_image_bytes_at_the_documented_offsets() -> None:
    device = generate_device_key(Algorithm.EC)
    server = generate_server_key(Algorithm.EC)
    image = DctImage.erased()
    sec1 = device.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    write_private_key(image, Transport.UDP, sec1)
    write_public_key(image, Transport.UDP, device.public_key())
    write_server_key(image, Transport.UDP, server.public_key())
    write_server_address(image, Transport.UDP, ServerAddress("cloud.example", 5684))
    raw = image.to_bytes()

    assert raw[3106 : 3106 + len(sec1)] == sec1
    assert raw[3106 + len(sec1) : 3298] == b"\xff" * (192 - len(sec1))
    pub = _spki(device.public_key())
    assert len(pub) == 91
    # mbedtls writes the DER at the END of the zeroed 128-byte buffer.
    assert raw[2978 : 2978 + 37] == b"\x00" * 37
    assert raw[3015:3106] == pub
    assert raw[3298:3389] == _spki(server.public_key())
    assert raw[3389:3490] == b"\xff" * 101
    assert raw[3490:3492] == bytes([1, 13])
    assert raw[3492:3505] == b"cloud.example"
    assert raw[3556:3558] == bytes([0x16, 0x34])
    # The TCP slots stay erased.
    assert raw[34:1634] == b"\xff" * 1600
    assert raw[2082:2850] == b"\xff" * 768
    loaded = decode_public_key_slot(raw[2978:3106], Transport.UDP, "slot")
    assert loaded.fingerprint.digest  # parses back


def test_decode_of_a_hand_made_image() -> None:
    """An image built here byte by byte decodes through Fermion's helpers."""
    raw = bytearray(b"\xff" * 8391)
    raw[2466 : 2466 + 17] = bytes([1, 15]) + b"device.spark.io"
    raw[2532:2534] = b"\xff\xff"
    raw[1825] = ord("1")
    raw[3618:3630] = bytes(range(1, 13))
    image = DctImage(bytes(raw))
    assert read_server_address(image, Transport.TCP) == ServerAddress("device.spark.io", None)
    assert read_server_address(image, Transport.UDP) is None
    assert read_claimed(image) is True
    assert read_device_id(image) == bytes(range(1, 13)).hex()
    assert read_cloud_transport(image) == 0xFF


def test_wrong_algorithm_server_key_refused() -> None:
    image = DctImage.erased()
    with pytest.raises(DctError, match="EC key cannot go in the TCP slot"):
        write_server_key(image, Transport.TCP, generate_server_key(Algorithm.EC).public_key())


def test_oversized_key_refused() -> None:
    image = DctImage.erased()
    with pytest.raises(DctError, match="does not fit the 192-byte slot at 3106"):
        write_private_key(image, Transport.UDP, b"\x30" * 300)
