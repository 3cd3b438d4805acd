"""The application DCT image: every field of Device OS's ``application_dct_t``, by name.

Offsets and sizes are reference §2.1 (device-os v2.3.1 ``dct.h``, where they are static-asserted).
Gen 2 (STM32F2xx) and Gen 3 (nRF52840) agree from offset 0 through ``device_secret``; after that
each has its own tail, and both structs end at 8391.

**Dump size.** DFU alt 1 maps the app DCT at address 0 in a 16 KiB region
(``"@DCT Flash /0x00000000/01*016Kg"``), so ``dfu-util -a 1 -U dct.bin`` on real hardware reads
the whole 16384-byte sector. That is the size Fermion writes for a simulated device's flash image
and for a new dump. It also accepts a file of exactly 8391 bytes (the struct alone, as a tool
that cuts the dump to the struct would leave it) and keeps whichever size it was given. Any other
size is refused: an odd size means the file is not a DCT dump, and guessing offsets in it would
write keys to the wrong place.

Erased flash reads 0xFF, so an erased image is all 0xFF.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fermion.errors import DctError, KeyFormatError
from fermion.fsutil import atomic_write
from fermion.keys import (
    Algorithm,
    LoadedKey,
    PublicKey,
    load_key,
    public_key_der,
)
from fermion.keys.serverfile import (
    ADDRESS_BLOCK_SIZE,
    LAYOUTS,
    ServerAddress,
    Transport,
    decode_address_block,
)

STRUCT_SIZE = 8391
SECTOR_SIZE = 16 * 1024
DUMP_SIZES = (SECTOR_SIZE, STRUCT_SIZE)
ERASED = 0xFF


@dataclass(frozen=True)
class Field:
    """One member of ``application_dct_t``. ``overlay`` marks a region inside another field."""

    name: str
    offset: int
    size: int
    overlay: bool = False

    @property
    def end(self) -> int:
        return self.offset + self.size


# Shared by both generations, in struct order.
_COMMON: tuple[Field, ...] = (
    Field("system_flags", 0, 32),
    Field("version", 32, 2),
    Field("device_private_key", 34, 1216),
    Field("device_public_key", 1250, 384),
    Field("ip_config", 1634, 24),
    Field("unused", 1658, 95),
    Field("ota_update_flag", 1753, 1),
    Field("feature_flags", 1754, 4),
    Field("country_code", 1758, 4),
    Field("claim_code", 1762, 63),
    Field("claimed", 1825, 1),
    Field("ssid_prefix", 1826, 26),
    Field("device_code", 1852, 6),
    Field("version_string", 1858, 32),
    Field("dns_resolve", 1890, 128),
    Field("reserved1", 2018, 64),
    Field("server_public_key", 2082, 768),
    # Not a struct member: DCT_SERVER_ADDRESS_OFFSET = server_public_key + 384.
    Field("server_address", 2466, 128, overlay=True),
    Field("padding", 2850, 2),
    Field("flash_modules", 2852, 100),
    Field("product_store", 2952, 24),
    Field("antenna_selection", 2976, 1),
    Field("cloud_transport", 2977, 1),
    Field("alt_device_public_key", 2978, 128),
    Field("alt_device_private_key", 3106, 192),
    Field("alt_server_public_key", 3298, 192),
    Field("alt_server_address", 3490, 128),
    Field("device_id", 3618, 12),
    Field("radio_flags", 3630, 1),
    Field("mode_button_mirror", 3631, 32),
    Field("led_mirror", 3663, 96),
    Field("led_theme", 3759, 64),
    Field("eap_config", 3823, 4296),
    Field("device_secret", 8119, 15),
)

_GEN2_TAIL: tuple[Field, ...] = (
    Field("power_config", 8134, 32),
    Field("ext_low_speed_clock_disable", 8166, 4),
    Field("reserved2", 8170, 221),
)

# Reference §2.1 gives the Gen 3 offsets; the sizes follow from consecutive offsets and the end.
_GEN3_TAIL: tuple[Field, ...] = (
    Field("setup_done", 8134, 1),
    Field("ncp_id", 8135, 4),
    Field("power_config", 8139, 32),
    Field("radio_antenna", 8171, 1),
    Field("reserved2", 8172, 219),
)


@dataclass(frozen=True)
class Layout:
    name: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field:
        for item in self.fields:
            if item.name == name:
                return item
        raise DctError(f"DCT field {name!r}: no such field in the {self.name} layout")


GEN2 = Layout("gen2", _COMMON + _GEN2_TAIL)
GEN3 = Layout("gen3", _COMMON + _GEN3_TAIL)


def layout_for_generation(generation: int) -> Layout:
    return GEN3 if generation >= 3 else GEN2


@dataclass(frozen=True)
class Region:
    """A byte range of the DCT that a command reads or writes as one unit."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


# The ranges Device OS and particle-cli use (reference §2.2, §3.1). The private key *fields* are
# larger (1216 on TCP) but only these many bytes are read and written.
PRIVATE_KEY_SLOT = {Transport.TCP: Region(34, 612), Transport.UDP: Region(3106, 192)}
PUBLIC_KEY_SLOT = {Transport.TCP: Region(1250, 384), Transport.UDP: Region(2978, 128)}
SERVER_KEY_SLOT = {Transport.TCP: Region(2082, 384), Transport.UDP: Region(3298, 192)}
SERVER_ADDRESS_SLOT = {
    Transport.TCP: Region(2466, ADDRESS_BLOCK_SIZE),
    Transport.UDP: Region(3490, ADDRESS_BLOCK_SIZE),
}
# What `keys server` writes in one go: the key slot followed by the address block.
SERVER_KEY_FILE_SLOT = {
    t: Region(SERVER_KEY_SLOT[t].offset, layout.size) for t, layout in LAYOUTS.items()
}
CLOUD_TRANSPORT = Region(2977, 1)
CLOUD_TRANSPORT_DEFAULT = 0xFF  # the platform default: UDP on the Electron
CLOUD_TRANSPORT_TCP = 0x00
CLAIM_CODE = Region(1762, 63)
CLAIMED = Region(1825, 1)
CLAIMED_YES = ord("1")
DEVICE_ID = Region(3618, 12)


class Flash(Protocol):
    """Anything that holds a DCT: an image in memory, or a link to a device or a dump file."""

    def read_region(self, offset: int, size: int) -> bytes: ...

    def write_region(self, offset: int, data: bytes) -> None: ...


class DctImage:
    """An application DCT image of 8391 or 16384 bytes, read and written by field name."""

    def __init__(self, data: bytes, layout: Layout = GEN2, source: str = "DCT image") -> None:
        if len(data) not in DUMP_SIZES:
            raise DctError(
                f"{source}: {len(data)} bytes is not a DCT dump (expected {SECTOR_SIZE}, the DFU "
                f"alt 1 sector, or {STRUCT_SIZE}, the application DCT struct)"
            )
        self._data = bytearray(data)
        self.layout = layout
        self.source = source

    @classmethod
    def erased(cls, layout: Layout = GEN2, size: int = SECTOR_SIZE) -> DctImage:
        return cls(bytes([ERASED]) * size, layout)

    @classmethod
    def from_file(cls, path: Path, layout: Layout = GEN2) -> DctImage:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise DctError(f"{path}: no such DCT file") from None
        except IsADirectoryError:
            raise DctError(f"{path}: is a directory, expected a DCT dump") from None
        except OSError as exc:
            raise DctError(f"{path}: cannot read ({exc.strerror})") from None
        return cls(data, layout, source=str(path))

    def save(self, path: Path) -> None:
        atomic_write(Path(path), bytes(self._data))

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def erase(self) -> None:
        self._data[:] = bytes([ERASED]) * len(self._data)

    # --- by field name -----------------------------------------------------------------------

    def read(self, name: str) -> bytes:
        item = self.layout.field(name)
        return bytes(self._data[item.offset : item.end])

    def write(self, name: str, value: bytes) -> None:
        item = self.layout.field(name)
        if len(value) != item.size:
            raise DctError(
                f"{self.source}: field {name} is {item.size} bytes, got {len(value)} bytes"
            )
        self._data[item.offset : item.end] = value

    # --- by offset (the Flash protocol) ------------------------------------------------------

    def read_region(self, offset: int, size: int) -> bytes:
        self._check_range(offset, size)
        return bytes(self._data[offset : offset + size])

    def write_region(self, offset: int, data: bytes) -> None:
        self._check_range(offset, len(data))
        self._data[offset : offset + len(data)] = data

    def _check_range(self, offset: int, size: int) -> None:
        if offset < 0 or size < 0 or offset + size > len(self._data):
            raise DctError(
                f"{self.source}: range {offset}+{size} is outside the {len(self._data)}-byte image"
            )


# --- typed helpers over any Flash ------------------------------------------------------------


def _pad(data: bytes, region: Region, what: str, fill: int = ERASED) -> bytes:
    if len(data) > region.size:
        raise DctError(
            f"{what}: {len(data)} bytes does not fit the {region.size}-byte slot at {region.offset}"
        )
    return data + bytes([fill]) * (region.size - len(data))


def is_erased_slot(slot: bytes) -> bool:
    """Device OS's only validity test for a key slot: is the first byte erased (0xFF)?"""
    return not slot or slot[0] == ERASED


def read_private_key_slot(flash: Flash, transport: Transport) -> bytes:
    region = PRIVATE_KEY_SLOT[transport]
    return flash.read_region(region.offset, region.size)


def write_private_key(flash: Flash, transport: Transport, der: bytes) -> None:
    """Write a private key DER at the transport's slot, the rest of the slot erased (0xFF)."""
    region = PRIVATE_KEY_SLOT[transport]
    flash.write_region(region.offset, _pad(der, region, "device private key"))


def decode_private_key_slot(slot: bytes, source: str) -> LoadedKey:
    """The key in a private slot; ``KeyFormatError`` when it is erased, corrupt or public only."""
    loaded = load_key(slot, source)
    if loaded.private is None:
        raise KeyFormatError(f"{source}: holds a public key, expected a private key")
    return loaded


def encode_public_key_slot(transport: Transport, public: PublicKey) -> bytes:
    """The public slot as ``fetch_device_public_key`` leaves it (reference §2.2).

    TCP: the 162-byte SPKI DER then 0x00 to 384 bytes. UDP: mbedtls writes the DER at the *end*
    of a zeroed 128-byte buffer.
    """
    region = PUBLIC_KEY_SLOT[transport]
    der = public_key_der(public)
    if len(der) > region.size:
        raise DctError(f"device public key: {len(der)} bytes does not fit {region.size}")
    if transport is Transport.TCP:
        return der + bytes(region.size - len(der))
    return bytes(region.size - len(der)) + der


def read_public_key_slot(flash: Flash, transport: Transport) -> bytes:
    region = PUBLIC_KEY_SLOT[transport]
    return flash.read_region(region.offset, region.size)


def decode_public_key_slot(slot: bytes, transport: Transport, source: str) -> LoadedKey:
    if transport is Transport.UDP:
        # The DER sits at the end; a SEQUENCE starts with 0x30, so leading zeros are filler.
        slot = slot.lstrip(b"\x00")
    return load_key(slot, source)


def write_public_key(flash: Flash, transport: Transport, public: PublicKey) -> bool:
    """Write the derived public key unless the slot already holds it; True when written."""
    region = PUBLIC_KEY_SLOT[transport]
    wanted = encode_public_key_slot(transport, public)
    if flash.read_region(region.offset, region.size) == wanted:
        return False
    flash.write_region(region.offset, wanted)
    return True


def read_server_key_slot(flash: Flash, transport: Transport) -> bytes:
    region = SERVER_KEY_SLOT[transport]
    return flash.read_region(region.offset, region.size)


def write_server_key(flash: Flash, transport: Transport, public: PublicKey) -> None:
    """Write a server public key DER at the transport's slot, 0xFF after it (address untouched)."""
    algorithm = Algorithm.of(public)
    if algorithm is not transport.algorithm:
        raise DctError(
            f"server key: an {algorithm.value.upper()} key cannot go in the "
            f"{transport.value.upper()} slot (needs {transport.algorithm.value.upper()})"
        )
    region = SERVER_KEY_SLOT[transport]
    flash.write_region(region.offset, _pad(public_key_der(public), region, "server public key"))


def write_server_key_file(flash: Flash, transport: Transport, data: bytes) -> None:
    """Write a formatted server-key file (key + address) the way ``keys server`` does."""
    region = SERVER_KEY_FILE_SLOT[transport]
    if len(data) != region.size:
        raise DctError(
            f"server key file: {len(data)} bytes, a {transport.value.upper()} file is "
            f"{region.size} bytes"
        )
    flash.write_region(region.offset, data)


def read_server_address(flash: Flash, transport: Transport) -> ServerAddress | None:
    """The stored address, or None when blank or invalid (Device OS then uses its backup)."""
    region = SERVER_ADDRESS_SLOT[transport]
    return decode_address_block(flash.read_region(region.offset, region.size), "server address")


def write_server_address(flash: Flash, transport: Transport, address: ServerAddress) -> None:
    region = SERVER_ADDRESS_SLOT[transport]
    flash.write_region(region.offset, address.encode_block())


def read_cloud_transport(flash: Flash) -> int:
    return flash.read_region(CLOUD_TRANSPORT.offset, 1)[0]


def write_cloud_transport(flash: Flash, value: int) -> None:
    flash.write_region(CLOUD_TRANSPORT.offset, bytes([value]))


def read_claim_code(flash: Flash) -> str | None:
    raw = flash.read_region(CLAIM_CODE.offset, CLAIM_CODE.size)
    if is_erased_slot(raw) or raw[0] == 0:
        return None
    text = raw.split(b"\x00", 1)[0].split(b"\xff", 1)[0]
    return text.decode("ascii", errors="replace")


def write_claim_code(flash: Flash, code: str) -> None:
    encoded = code.encode("ascii", errors="strict") if code.isascii() else None
    if not encoded:
        raise DctError(f"claim code: {code!r} must be non-empty ASCII")
    flash.write_region(CLAIM_CODE.offset, _pad(encoded, CLAIM_CODE, "claim code", fill=0))


def clear_claim_code(flash: Flash) -> None:
    flash.write_region(CLAIM_CODE.offset, bytes(CLAIM_CODE.size))


def read_claimed(flash: Flash) -> bool:
    return flash.read_region(CLAIMED.offset, 1)[0] == CLAIMED_YES


def write_claimed(flash: Flash, claimed: bool) -> None:
    flash.write_region(CLAIMED.offset, bytes([CLAIMED_YES if claimed else 0]))


def read_device_id(flash: Flash) -> str | None:
    raw = flash.read_region(DEVICE_ID.offset, DEVICE_ID.size)
    if raw == bytes([ERASED]) * DEVICE_ID.size or raw == bytes(DEVICE_ID.size):
        return None
    return raw.hex()


def write_device_id(flash: Flash, device_id: str) -> None:
    try:
        raw = bytes.fromhex(device_id)
    except ValueError:
        raw = b""
    if len(raw) != DEVICE_ID.size:
        raise DctError(f"device id: {device_id!r} is not 24 hex digits")
    flash.write_region(DEVICE_ID.offset, raw)
