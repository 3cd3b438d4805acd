"""Simulated devices on disk: one folder per device in the data directory.

``<data dir>/devices/<id>/`` holds:

- ``identity.json``: what the hardware fixes and no fault can change::

      {"schema": 1, "id": "<24 hex>", "platform": "photon", "platform_id": 6,
       "created": "<ISO 8601 UTC>", "key_backup": "eeprom" | "file"}

  ``key_backup`` (absent when off) says the application runs DeviceKeyHelperRK with that store:
  the simulator backs the keys up after each connection and restores them on a keys error.

  The transport is *not* stored: it follows from the platform and, on the Electron, from the
  DCT's ``cloud_transport`` byte, so that a brownout on a TCP-switched Electron puts it back on
  UDP exactly as on hardware.
- ``dct.bin``: the 16 KiB DCT sector (see ``fermion.device.dct``).
- ``bootloader.bin``: the bootloader sector. Intact it holds ``BOOTLOADER_IMAGE``; erased it is
  all 0xFF and the device is dead (dim blue D7).
- ``status.json``: what boots and the simulator record (schema in ``Status``).
- ``keyhelper.dat`` / ``eeprom.bin``: DeviceKeyHelperRK's backup stores, when used.

The data directory is ``$FERMION_HOME``, or the platform's user data directory.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fermion.device.dct import (
    DctImage,
    Layout,
    layout_for_generation,
    read_cloud_transport,
    write_device_id,
)
from fermion.device.platforms import Platform, transport_for
from fermion.errors import DeviceError
from fermion.fsutil import atomic_write
from fermion.ids import not_a_device_id, parse_device_id
from fermion.keys.serverfile import Transport
from fermion.paths import default_data_dir

SCHEMA = 1
DEVICES_DIR = "devices"
# A recognisable bootloader stand-in: only "intact" vs "erased" matters to the model.
BOOTLOADER_IMAGE = b"FERMION-SIM-BOOTLOADER\x00" + bytes(range(256)) * 2
ERASED_BYTE = 0xFF
KEY_BACKUP_STORES = ("eeprom", "file")  # DeviceKeyHelperEEPROM, DeviceKeyHelperSpiffsParticle


def data_dir() -> Path:
    return default_data_dir()


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def normalise_device_id(value: str) -> str:
    device_id = parse_device_id(value)
    if device_id is None:
        raise DeviceError(not_a_device_id("device", value))
    return device_id


def parse_key_backup(value: str, source: str = "--key-backup") -> str:
    kind = value.strip().lower()
    if kind not in KEY_BACKUP_STORES:
        raise DeviceError(f"{source}: {value!r} is not one of {', '.join(KEY_BACKUP_STORES)}")
    return kind


@dataclass(frozen=True)
class Identity:
    id: str
    platform: Platform
    created: str
    key_backup: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "id": self.id,
            "platform": self.platform.value,
            "platform_id": self.platform.id,
            "created": self.created,
        }
        if self.key_backup is not None:
            data["key_backup"] = self.key_backup
        return data

    @classmethod
    def from_json(cls, data: Any, source: str) -> Identity:
        try:
            device_id = normalise_device_id(str(data["id"]))
            platform = Platform.parse(str(data["platform"]), source)
            key_backup = data.get("key_backup")
            if key_backup is not None:
                key_backup = parse_key_backup(str(key_backup), f"{source}: key_backup")
            return cls(device_id, platform, str(data.get("created", "")), key_backup)
        except (KeyError, TypeError):
            raise DeviceError(f"{source}: not a device identity (needs id and platform)") from None


@dataclass
class Status:
    """``status.json``. Boots fill the firmware and key fields, the simulator the rest.

    - ``firmware``: ``"ok"`` or ``"dead"``; ``firmware_fault``: why it is dead, else null.
    - ``key_errors``: the ``particle_key_errors`` mask of the last boot (``KeyErrors``), null
      when the device did not boot.
    - ``boots``: how many times it booted; ``last_boot``: when (ISO 8601 UTC).
    - ``online``, ``last_seen``: the simulator's cloud connection.
    - ``last_protocol_error``: ``{"code": int, "name": str, "message": str, "at": str}`` or null.
    """

    schema: int = SCHEMA
    firmware: str = "ok"
    firmware_fault: str | None = None
    key_errors: int | None = None
    boots: int = 0
    last_boot: str | None = None
    online: bool = False
    last_seen: str | None = None
    last_protocol_error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, source: str) -> Status:
        if not isinstance(data, dict):
            raise DeviceError(f"{source}: not a device status object")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "extra"}
        extra = {k: v for k, v in data.items() if k not in cls.__dataclass_fields__}
        try:
            return cls(**known, extra=extra)
        except TypeError:
            raise DeviceError(f"{source}: malformed device status") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**extra, **data}


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DeviceError(f"{path}: missing {what}") from None
    except (OSError, ValueError) as exc:
        raise DeviceError(f"{path}: unreadable {what} ({exc})") from None


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


class SimDevice:
    """One simulated device folder. Reads go to disk every time; writes are atomic."""

    def __init__(self, folder: Path, identity: Identity) -> None:
        self.folder = folder
        self.identity = identity

    # --- locating ----------------------------------------------------------------------------

    @staticmethod
    def root(home: Path | None = None) -> Path:
        return (home or data_dir()) / DEVICES_DIR

    @classmethod
    def open(cls, device_id: str, home: Path | None = None) -> SimDevice:
        normalised = normalise_device_id(device_id)
        folder = cls.root(home) / normalised
        if not (folder / "identity.json").exists():
            raise DeviceError(f"device {normalised}: no such simulated device in {cls.root(home)}")
        identity = Identity.from_json(
            _read_json(folder / "identity.json", "identity"), str(folder / "identity.json")
        )
        return cls(folder, identity)

    @classmethod
    def list(cls, home: Path | None = None) -> list[SimDevice]:
        root = cls.root(home)
        if not root.is_dir():
            return []
        found = []
        for entry in sorted(root.iterdir()):
            if parse_device_id(entry.name) == entry.name and (entry / "identity.json").exists():
                found.append(cls.open(entry.name, home))
        return found

    @classmethod
    def create(
        cls,
        platform: Platform,
        home: Path | None = None,
        device_id: str | None = None,
        key_backup: str | None = None,
    ) -> SimDevice:
        """A new device with an erased DCT (its id written in) and an intact bootloader."""
        home = home or data_dir()
        if key_backup is not None:
            key_backup = parse_key_backup(key_backup)
        device_id = normalise_device_id(device_id) if device_id else secrets.token_hex(12)
        folder = cls.root(home) / device_id
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise DeviceError(f"device {device_id}: already exists in {cls.root(home)}") from None
        identity = Identity(device_id, platform, now_iso(), key_backup)
        device = cls(folder, identity)
        image = DctImage.erased(device.layout)
        write_device_id(image, device_id)
        device.save_image(image)
        atomic_write(device.bootloader_path, BOOTLOADER_IMAGE)
        device.save_status(Status())
        # identity.json last: a folder without it is not a device, so a crash leaves no half-device.
        _write_json(folder / "identity.json", identity.to_json())
        return device

    # --- properties --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.identity.id

    @property
    def platform(self) -> Platform:
        return self.identity.platform

    @property
    def layout(self) -> Layout:
        return layout_for_generation(self.platform.generation)

    @property
    def home(self) -> Path:
        return self.folder.parent.parent

    @property
    def dct_path(self) -> Path:
        return self.folder / "dct.bin"

    @property
    def bootloader_path(self) -> Path:
        return self.folder / "bootloader.bin"

    @property
    def status_path(self) -> Path:
        return self.folder / "status.json"

    @property
    def name(self) -> str:
        return f"{self.platform.value} device {self.id}"

    # --- flash -------------------------------------------------------------------------------

    def load_image(self) -> DctImage:
        image = DctImage.from_file(self.dct_path, self.layout)
        image.source = f"{self.name} DCT ({self.dct_path})"
        return image

    def save_image(self, image: DctImage) -> None:
        image.save(self.dct_path)

    def transport(self, image: DctImage | None = None) -> Transport:
        """The transport the firmware will use: fixed by platform, or ``cloud_transport``."""
        if not self.platform.transport_switchable:
            return self.platform.default_transport
        image = image or self.load_image()
        return transport_for(self.platform, read_cloud_transport(image))

    def bootloader_intact(self) -> bool:
        try:
            return self.bootloader_path.read_bytes() == BOOTLOADER_IMAGE
        except FileNotFoundError:
            return False

    def erase_bootloader(self) -> None:
        atomic_write(self.bootloader_path, bytes([ERASED_BYTE]) * len(BOOTLOADER_IMAGE))

    # --- status ------------------------------------------------------------------------------

    def load_status(self) -> Status:
        if not self.status_path.exists():
            return Status()
        return Status.from_json(_read_json(self.status_path, "status"), str(self.status_path))

    def save_status(self, status: Status) -> None:
        _write_json(self.status_path, status.to_json())
