"""Server-key files: byte for byte as particle-cli's `keys server --host --port` makes them."""

from __future__ import annotations

import pytest

from fermion.errors import ServerKeyFileError
from fermion.keys import Algorithm, fingerprint, generate_server_key, public_key_der
from fermion.keys.serverfile import (
    ServerAddress,
    Transport,
    decode_address_block,
    decode_server_key_file,
    encode_server_key_file,
    server_key_file_name,
)


@pytest.fixture(scope="module")
def rsa_server():  # type: ignore[no-untyped-def]
    return generate_server_key(Algorithm.RSA)


@pytest.fixture(scope="module")
def ec_server():  # type: ignore[no-untyped-def]
    return generate_server_key(Algorithm.EC)


def test_tcp_file_for_an_ip_address(rsa_server) -> None:  # type: ignore[no-untyped-def]
    der = public_key_der(rsa_server.public_key())
    # Built by hand from reference §3.1: DER, 0xFF to 384, TLV 00 04 a b c d, port BE at 450.
    expected = bytearray(b"\xff" * 512)
    expected[0:294] = der
    expected[384:390] = bytes([0x00, 0x04, 127, 0, 0, 1])
    expected[450:452] = bytes([0x16, 0x33])  # 5683
    assert encode_server_key_file(rsa_server.public_key(), "127.0.0.1", 5683) == bytes(expected)


def test_tcp_file_for_a_domain(rsa_server) -> None:  # type: ignore[no-untyped-def]
    der = public_key_der(rsa_server.public_key())
    expected = bytearray(b"\xff" * 512)
    expected[0:294] = der
    expected[384:386] = bytes([0x01, 17])
    expected[386:403] = b"cloud.example.com"
    expected[450:452] = bytes([0x16, 0x34])  # 5684
    assert encode_server_key_file(rsa_server.public_key(), "cloud.example.com", 5684) == bytes(
        expected
    )


def test_udp_file_layout(ec_server) -> None:  # type: ignore[no-untyped-def]
    der = public_key_der(ec_server.public_key())
    expected = bytearray(b"\xff" * 320)
    expected[0:91] = der
    expected[192:198] = bytes([0x00, 0x04, 10, 1, 2, 3])
    expected[258:260] = bytes([0x16, 0x34])
    assert encode_server_key_file(ec_server.public_key(), "10.1.2.3", 5684) == bytes(expected)


def test_without_host_only_padding(rsa_server) -> None:  # type: ignore[no-untyped-def]
    data = encode_server_key_file(rsa_server.public_key())
    assert data[294:] == b"\xff" * (512 - 294)
    decoded = decode_server_key_file(data)
    assert decoded.address is None
    assert decoded.transport is Transport.TCP


def test_round_trip(rsa_server, ec_server) -> None:  # type: ignore[no-untyped-def]
    for key, host, port in [
        (rsa_server, "127.0.0.1", 5683),
        (rsa_server, "fermion.local", None),
        (ec_server, "udp.example.org", 5684),
    ]:
        decoded = decode_server_key_file(encode_server_key_file(key.public_key(), host, port))
        assert decoded.address == ServerAddress(host, port)
        assert fingerprint(decoded.public_key) == fingerprint(key)


def test_bare_der_is_accepted(rsa_server) -> None:  # type: ignore[no-untyped-def]
    decoded = decode_server_key_file(public_key_der(rsa_server.public_key()))
    assert decoded.address is None
    assert decoded.transport is Transport.TCP


def test_default_port_markers() -> None:
    block = bytearray(b"\xff" * 128)
    block[0:6] = bytes([0, 4, 192, 168, 1, 2])
    assert decode_address_block(bytes(block)) == ServerAddress("192.168.1.2", None)
    block[66:68] = b"\x00\x00"
    assert decode_address_block(bytes(block)) == ServerAddress("192.168.1.2", None)
    assert decode_address_block(b"\xff" * 128) is None


def test_bad_input(rsa_server, ec_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ServerKeyFileError, match="port"):
        encode_server_key_file(rsa_server.public_key(), "127.0.0.1", 70000)
    with pytest.raises(ServerKeyFileError, match="needs a host"):
        encode_server_key_file(rsa_server.public_key(), None, 5683)
    with pytest.raises(ServerKeyFileError, match="host"):
        encode_server_key_file(rsa_server.public_key(), "1.2.3", 5683)
    with pytest.raises(ServerKeyFileError, match="too long"):
        encode_server_key_file(rsa_server.public_key(), "a" * 80 + ".com")
    with pytest.raises(ServerKeyFileError, match="UDP device"):
        encode_server_key_file(rsa_server.public_key(), transport=Transport.UDP)
    udp_sized = encode_server_key_file(ec_server.public_key())
    with pytest.raises(ServerKeyFileError, match=r"server\.der"):
        decode_server_key_file(b"\x00" * len(udp_sized), "server.der")


def test_particle_cli_output_names() -> None:
    assert server_key_file_name("rsa", "127.0.0.1", Transport.TCP) == "rsa-127_0_0_1-rsa.der"
    assert server_key_file_name("server", None, Transport.UDP) == "server-padded.der"
