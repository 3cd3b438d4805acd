"""The ``--dfu`` device link: real hardware in DFU mode, through ``dfu-util``.

The invocations are particle-cli's: every DCT read and write uses alt setting 1 (the DCT),
interface 0, and the segment's address and size from its key specs (reference §3.1): a read is
``dfu-util -d VID:PID -a 1 -i 0 -s ADDR:SIZE -U FILE``, a write
``dfu-util -d VID:PID -a 1 -i 0 -s ADDR -D FILE`` (``ADDR:leave`` on the write that should end
DFU mode and reset the device). Addresses are decimal, as the specs write them.

The device is found with ``dfu-util -l``: Particle's USB vendor id is 0x2b04; the product id
names the platform and the serial is the device id.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fermion.device.boot import BootReport
from fermion.device.link import DeviceLink
from fermion.device.platforms import Platform
from fermion.errors import DeviceError

PARTICLE_VID = 0x2B04
DCT_ALT = 1
# DFU-mode product ids (0xd000 + platform id).
DFU_PID: dict[Platform, int] = {
    Platform.PHOTON: 0xD006,
    Platform.P1: 0xD008,
    Platform.ELECTRON: 0xD00A,
    Platform.ARGON: 0xD00C,
    Platform.BORON: 0xD00D,
}
_PLATFORM_BY_PID = {pid: platform for platform, pid in DFU_PID.items()}
_FOUND = re.compile(
    r"Found DFU: \[(?P<vid>[0-9a-fA-F]{4}):(?P<pid>[0-9a-fA-F]{4})\].*?alt=(?P<alt>\d+)"
    r'(?:.*?serial="(?P<serial>[^"]*)")?'
)
TIMEOUT = 60.0


@dataclass(frozen=True)
class DfuDevice:
    platform: Platform
    serial: str | None

    @property
    def usb_id(self) -> str:
        return f"{PARTICLE_VID:04x}:{DFU_PID[self.platform]:04x}"


def dfu_util() -> str:
    """The dfu-util program: ``FERMION_DFU_UTIL`` or the one on PATH."""
    found = os.environ.get("FERMION_DFU_UTIL") or shutil.which("dfu-util")
    if not found:
        raise DeviceError(
            "--dfu: dfu-util is not installed (or not on PATH); install it, put the device in "
            "DFU mode (blinking yellow), and try again"
        )
    return found


def _run(args: list[str], what: str) -> str:
    cmd = [dfu_util(), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"dfu-util: {what} failed ({exc})") from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()
        reason = last[-1] if last else f"exit status {done.returncode}"
        raise DeviceError(f"dfu-util: {what} failed: {reason}")
    return done.stdout


def find_devices() -> list[DfuDevice]:
    """Particle devices in DFU mode that offer the DCT alt setting."""
    out = _run(["-l"], "listing DFU devices")
    found: dict[tuple[Platform, str | None], DfuDevice] = {}
    for match in _FOUND.finditer(out):
        if int(match["vid"], 16) != PARTICLE_VID or int(match["alt"]) != DCT_ALT:
            continue
        platform = _PLATFORM_BY_PID.get(int(match["pid"], 16))
        if platform is None:
            continue
        serial = (match["serial"] or "").strip().lower() or None
        found[(platform, serial)] = DfuDevice(platform, serial)
    return list(found.values())


def pick_device(device_id: str | None, platform: Platform | None) -> DfuDevice:
    devices = [
        d
        for d in find_devices()
        if (platform is None or d.platform is platform)
        and (device_id is None or d.serial in (None, device_id.lower()))
    ]
    if not devices:
        want = f" {device_id}" if device_id else ""
        raise DeviceError(
            f"--dfu: no Particle device{want} in DFU mode found by `dfu-util -l`; hold SETUP, "
            "tap RESET, release SETUP when the LED blinks yellow"
        )
    if len(devices) > 1:
        ids = ", ".join(f"{d.platform.value} {d.serial or '?'}" for d in devices)
        raise DeviceError(f"--dfu: several devices in DFU mode ({ids}); name one by its id")
    return devices[0]


class DfuLink(DeviceLink):
    """A device in DFU mode. Each read and write is one dfu-util run on alt 1."""

    def __init__(self, device: DfuDevice) -> None:
        self.dfu = device
        self.platform = device.platform
        self.name = f"{device.platform.value} device {device.serial or '(unknown id)'} (DFU)"
        self._last_write: tuple[int, bytes] | None = None

    @property
    def device_id(self) -> str | None:
        return self.dfu.serial

    def _base(self) -> list[str]:
        return ["-d", self.dfu.usb_id, "-a", str(DCT_ALT), "-i", "0"]

    def read_region(self, offset: int, size: int) -> bytes:
        with tempfile.TemporaryDirectory(prefix="fermion-dfu-") as tmp:
            target = Path(tmp) / "read.bin"
            _run(
                [*self._base(), "-s", f"{offset}:{size}", "-U", str(target)],
                f"reading {size} bytes at {offset} from {self.name}",
            )
            try:
                data = target.read_bytes()
            except OSError:
                raise DeviceError(f"dfu-util: read nothing at {offset} from {self.name}") from None
        if len(data) != size:
            raise DeviceError(
                f"dfu-util: read {len(data)} bytes at {offset} from {self.name}, expected {size}"
            )
        return data

    def _write(self, offset: int, data: bytes, leave: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="fermion-dfu-") as tmp:
            source = Path(tmp) / "write.bin"
            source.write_bytes(data)
            address = f"{offset}:leave" if leave else str(offset)
            _run(
                [*self._base(), "-s", address, "-D", str(source)],
                f"writing {len(data)} bytes at {offset} to {self.name}",
            )

    def write_region(self, offset: int, data: bytes) -> None:
        self._write(offset, data, leave=False)
        self._last_write = (offset, data)

    def reset(self) -> BootReport | None:
        # particle-cli leaves DFU mode by adding ":leave" to its last write; do the same, so the
        # device resets with what we wrote. With nothing written, detach instead.
        if self._last_write is not None:
            offset, data = self._last_write
            self._write(offset, data, leave=True)
            self._last_write = None
        else:
            _run(["-d", self.dfu.usb_id, "-e"], f"detaching {self.name}")
        return None


def open_dfu_link(device_id: str | None, platform: str | None = None) -> DfuLink:
    parsed = Platform.parse(platform, "--platform") if platform else None
    return DfuLink(pick_device(device_id, parsed))
