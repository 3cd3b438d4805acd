"""Server-key files and the server address block.

A server-key file is what ``keys server`` writes over DFU to a device's DCT: the server public key
DER, 0xFF padding, then the 128-byte server address block (type/length/value TLV at +0, port at
+66). The file covers ``server_public_key`` and the address that follows it in one write.

| transport | file size | address at | port at | key |
|-----------|-----------|------------|---------|-----|
| tcp       | 512       | 384        | 450     | RSA-2048 SPKI, 294 bytes |
| udp       | 320       | 192        | 258     | EC P-256 SPKI, 91 bytes |

Reference: particle-protocol.md §2.1 (``ServerAddress``) and §3.1 (particle-cli's layout).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from fermion.errors import KeyFormatError, ServerKeyFileError
from fermion.keys import Algorithm, PublicKey, load_key, public_key_der


class Transport(StrEnum):
    TCP = "tcp"
    UDP = "udp"

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.RSA if self is Transport.TCP else Algorithm.EC

    @property
    def default_port(self) -> int:
        return 5683 if self is Transport.TCP else 5684

    @property
    def default_host(self) -> str:
        return "device.spark.io" if self is Transport.TCP else "$id.udp.particle.io"


class AddressType(IntEnum):
    IPV4 = 0
    DOMAIN = 1


ADDRESS_BLOCK_SIZE = 128
ADDRESS_VALUE_MAX = 64
ADDRESS_PORT_OFFSET = 66
# Port 0 and 0xFFFF both mean "the transport's default port" to Device OS.
DEFAULT_PORT_MARKERS = frozenset({0, 0xFFFF})

_ALL_DIGITS_AND_DOTS = re.compile(r"^[0-9.]*$")


@dataclass(frozen=True)
class FileLayout:
    size: int
    address_offset: int

    @property
    def port_offset(self) -> int:
        return self.address_offset + ADDRESS_PORT_OFFSET


LAYOUTS: dict[Transport, FileLayout] = {
    Transport.TCP: FileLayout(size=512, address_offset=384),
    Transport.UDP: FileLayout(size=320, address_offset=192),
}


@dataclass(frozen=True)
class ServerAddress:
    """Where a device connects: an IPv4 address or a domain name, and a port (None = default)."""

    host: str
    port: int | None = None

    @property
    def type(self) -> AddressType:
        # particle-cli's rule: a host of only digits and dots is an IP address.
        return AddressType.IPV4 if _ALL_DIGITS_AND_DOTS.match(self.host) else AddressType.DOMAIN

    def tlv(self) -> bytes:
        """``[type, length, value...]`` as the device parses it."""
        if self.type is AddressType.IPV4:
            try:
                packed = ipaddress.IPv4Address(self.host).packed
            except ValueError:
                raise ServerKeyFileError(
                    f"host: {self.host!r} looks like an IPv4 address but is not one"
                ) from None
            return bytes([AddressType.IPV4, 4]) + packed
        encoded = self.host.encode("ascii", errors="strict") if self.host.isascii() else b""
        if not encoded:
            raise ServerKeyFileError(f"host: {self.host!r} must be a non-empty ASCII domain name")
        if len(encoded) > ADDRESS_VALUE_MAX - 1:
            raise ServerKeyFileError(
                f"host: {len(encoded)} characters is too long (at most {ADDRESS_VALUE_MAX - 1})"
            )
        return bytes([AddressType.DOMAIN, len(encoded)]) + encoded

    def encode_block(self) -> bytes:
        """The 128-byte address block: TLV, 0xFF filler, port (BE) at +66, 0xFF filler."""
        block = bytearray(b"\xff" * ADDRESS_BLOCK_SIZE)
        tlv = self.tlv()
        block[: len(tlv)] = tlv
        if self.port is not None:
            _check_port(self.port)
            block[ADDRESS_PORT_OFFSET : ADDRESS_PORT_OFFSET + 2] = self.port.to_bytes(2, "big")
        return bytes(block)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port is not None else self.host


def _check_port(port: int) -> None:
    if not 1 <= port <= 0xFFFE:
        raise ServerKeyFileError(f"port: {port} is not a port number (1-65534)")


def decode_address_block(block: bytes, source: str = "address block") -> ServerAddress | None:
    """Read a 128-byte (or longer) address block; ``None`` when it is blank or invalid.

    Device OS treats any type other than 0 or 1 as "no address" and falls back to its backup.
    """
    if len(block) < ADDRESS_PORT_OFFSET + 2:
        raise ServerKeyFileError(
            f"{source}: {len(block)} bytes, an address block needs {ADDRESS_BLOCK_SIZE}"
        )
    kind, length = block[0], block[1]
    port_raw = int.from_bytes(block[ADDRESS_PORT_OFFSET : ADDRESS_PORT_OFFSET + 2], "big")
    port = None if port_raw in DEFAULT_PORT_MARKERS else port_raw
    if kind == AddressType.IPV4:
        if length != 4:
            return None
        return ServerAddress(str(ipaddress.IPv4Address(block[2:6])), port)
    if kind == AddressType.DOMAIN:
        if length == 0 or length > ADDRESS_VALUE_MAX:
            return None
        raw = block[2 : 2 + length].split(b"\x00", 1)[0]
        try:
            host = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        if not host or not host.isprintable():
            return None
        return ServerAddress(host, port)
    return None


@dataclass(frozen=True)
class ServerKeyFile:
    """A decoded server-key file: the key, its transport, and the address if one is set."""

    public_key: PublicKey
    transport: Transport
    address: ServerAddress | None


def encode_server_key_file(
    public_key: PublicKey,
    host: str | None = None,
    port: int | None = None,
    transport: Transport | None = None,
) -> bytes:
    """The padded file particle-cli's ``keys server`` writes: key DER, 0xFF, address, port."""
    algorithm = Algorithm.of(public_key)
    transport = transport or (Transport.TCP if algorithm is Algorithm.RSA else Transport.UDP)
    if transport.algorithm is not algorithm:
        raise ServerKeyFileError(
            f"server key: {algorithm.value.upper()} key cannot serve a {transport.value.upper()} "
            f"device (needs {transport.algorithm.value.upper()})"
        )
    if port is not None and host is None:
        raise ServerKeyFileError("port: a port needs a host (--host) to go with it")
    layout = LAYOUTS[transport]
    der = public_key_der(public_key)
    if len(der) > layout.address_offset:
        raise ServerKeyFileError(
            f"server key: {len(der)} bytes of DER does not fit before the address at "
            f"{layout.address_offset}"
        )
    image = bytearray(b"\xff" * layout.size)
    image[: len(der)] = der
    if host is not None:
        block = ServerAddress(host, port).encode_block()
        end = min(layout.size, layout.address_offset + ADDRESS_BLOCK_SIZE)
        image[layout.address_offset : end] = block[: end - layout.address_offset]
    return bytes(image)


def decode_server_key_file(data: bytes, source: str = "server key file") -> ServerKeyFile:
    """Read a 512-byte TCP or 320-byte UDP file, or a bare DER/PEM public key."""
    layout_by_size = {layout.size: t for t, layout in LAYOUTS.items()}
    transport = layout_by_size.get(len(data))
    try:
        loaded = load_key(data, source)
    except KeyFormatError as exc:
        raise ServerKeyFileError(str(exc)) from None
    algorithm = loaded.algorithm
    if transport is None:
        return ServerKeyFile(
            loaded.public,
            Transport.TCP if algorithm is Algorithm.RSA else Transport.UDP,
            None,
        )
    if transport.algorithm is not algorithm:
        raise ServerKeyFileError(
            f"{source}: {len(data)} bytes is a {transport.value.upper()} file but holds an "
            f"{algorithm.value.upper()} key"
        )
    layout = LAYOUTS[transport]
    block = data[layout.address_offset :] + b"\xff" * ADDRESS_BLOCK_SIZE
    address = decode_address_block(block[:ADDRESS_BLOCK_SIZE], source)
    return ServerKeyFile(loaded.public, transport, address)


def server_key_file_name(base: str, host: str | None, transport: Transport) -> str:
    """particle-cli's output name for a formatted server-key file.

    ``<base>-<host with . as _>-<alg>.der`` with a host, ``<base>-padded.der`` without one.
    """
    if host is None:
        return f"{base}-padded.der"
    return f"{base}-{host.replace('.', '_')}-{transport.algorithm.value}.der"
