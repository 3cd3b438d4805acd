"""What goes wrong with real devices' flash, applied to a simulated one.

- Gen 2 brownout: power fails while Device OS rewrites the DCT sector, and the sector is left
  erased. Every field reads 0xFF: the keys regenerate at the next boot and the server key and
  address fall back to the compiled-in backup, so the device now also points at the backup cloud
  (faithful: on hardware ``keys server`` repairs that part).
- Gen 3 file-system reformat: the DCT is a LittleFS file; a reformat loses it, with the same
  outcome for keys.
- Gen 3 factory reset (``resetSettingsToFactoryDefaultsIfNeeded``): keeps the EC device keys,
  clears the rest, and writes the backup UDP server key and address back.
- Bootloader sector erased: the device never starts (dim blue D7). A firmware fault, not a key
  fault.
- Server key overwritten with another cloud's key.
"""

from __future__ import annotations

from pathlib import Path

from fermion.device import builtin
from fermion.device.dct import (
    PRIVATE_KEY_SLOT,
    PUBLIC_KEY_SLOT,
    write_server_address,
    write_server_key,
)
from fermion.device.store import SimDevice
from fermion.errors import DeviceError, KeyFormatError, ServerKeyFileError
from fermion.keys import LoadedKey, require_algorithm
from fermion.keys.serverfile import Transport, decode_server_key_file


def _require_generation(device: SimDevice, generation: int, fault: str) -> None:
    if device.platform.generation != generation:
        raise DeviceError(
            f"{device.name}: {fault} is a Gen {generation} fault; a {device.platform.value} is "
            f"Gen {device.platform.generation}"
        )


def brownout(device: SimDevice) -> None:
    _require_generation(device, 2, "a brownout erasing the DCT sector")
    image = device.load_image()
    image.erase()
    device.save_image(image)


def fs_reformat(device: SimDevice) -> None:
    _require_generation(device, 3, "a file-system reformat")
    image = device.load_image()
    image.erase()
    device.save_image(image)


def factory_reset(device: SimDevice) -> None:
    _require_generation(device, 3, "a factory reset")
    image = device.load_image()
    kept = [
        (region, image.read_region(region.offset, region.size))
        for region in (PRIVATE_KEY_SLOT[Transport.UDP], PUBLIC_KEY_SLOT[Transport.UDP])
    ]
    image.erase()
    for region, data in kept:
        image.write_region(region.offset, data)
    write_server_key(image, Transport.UDP, builtin.backup_public_key(device.home, Transport.UDP))
    write_server_address(image, Transport.UDP, builtin.BACKUP_ADDRESS[Transport.UDP])
    device.save_image(image)


def erase_bootloader(device: SimDevice) -> None:
    device.erase_bootloader()


def overwrite_server_key(device: SimDevice, path: Path) -> None:
    """Put another cloud's public key (any key format, or a server-key file) in the key slot."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ServerKeyFileError(f"{path}: cannot read ({exc.strerror})") from None
    parsed = decode_server_key_file(data, str(path))
    image = device.load_image()
    transport = device.transport(image)
    try:
        require_algorithm(
            LoadedKey(parsed.public_key),
            transport.algorithm,
            str(path),
            f"the server key slot of {device.name} ({transport.value.upper()})",
        )
    except KeyFormatError as exc:
        raise ServerKeyFileError(str(exc)) from None
    write_server_key(image, transport, parsed.public_key)
    device.save_image(image)
