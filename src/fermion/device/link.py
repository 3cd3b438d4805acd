"""Device links: how the offline ``keys`` commands reach a device's DCT.

A link reads and writes byte ranges of the application DCT at DFU alt-1 addresses, names itself
in messages, knows (or infers) the platform and transport, and can reset the device. Two links
exist here: a simulated device (``SimLink``) and a raw DCT dump file (``DctFileLink``, as
``dfu-util -a 1 -U`` reads from real hardware); real hardware in DFU mode is ``DfuLink`` in
``fermion.device.dfu``. ``open_link`` turns the commands' options into one of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from fermion.device.boot import DEAD_BOOTLOADER, BootReport, boot
from fermion.device.dct import (
    DctImage,
    is_erased_slot,
    layout_for_generation,
    read_cloud_transport,
    read_device_id,
    read_private_key_slot,
)
from fermion.device.platforms import Platform, transport_for
from fermion.device.store import SimDevice
from fermion.errors import DeviceError
from fermion.keys.serverfile import Transport


class DeviceLink(ABC):
    """A device's DCT, reached some way. Every write is all-or-nothing."""

    #: How messages name the target ("photon device 0123...", "DCT file dump.bin").
    name: str
    platform: Platform | None

    @abstractmethod
    def read_region(self, offset: int, size: int) -> bytes: ...

    @abstractmethod
    def write_region(self, offset: int, data: bytes) -> None: ...

    @abstractmethod
    def reset(self) -> BootReport | None:
        """Leave DFU / reboot so the device picks up what was written."""

    @property
    def device_id(self) -> str | None:
        return read_device_id(self)

    def transport(self) -> Transport:
        if self.platform is not None:
            return transport_for(self.platform, read_cloud_transport(self))
        return self._infer_transport()

    def _infer_transport(self) -> Transport:
        # Without a platform, the slot that holds a key tells us; both or neither is ambiguous.
        has = {t: not is_erased_slot(read_private_key_slot(self, t)) for t in Transport}
        if has[Transport.TCP] != has[Transport.UDP]:
            return Transport.TCP if has[Transport.TCP] else Transport.UDP
        names = ", ".join(p.value for p in Platform)
        raise DeviceError(
            f"{self.name}: cannot tell whether it is a TCP or a UDP device; pass --platform "
            f"({names})"
        )


class SimLink(DeviceLink):
    """A simulated device. Like real hardware, a dead device (no bootloader) has no DFU."""

    def __init__(self, device: SimDevice) -> None:
        if not device.bootloader_intact():
            raise DeviceError(
                f"{device.name}: {DEAD_BOOTLOADER}; it cannot enter DFU mode, so its keys cannot "
                "be read or written (a firmware fault, not a key fault)"
            )
        self.device = device
        self.name = device.name
        self.platform = device.platform

    @property
    def device_id(self) -> str | None:
        return self.device.id

    def read_region(self, offset: int, size: int) -> bytes:
        return self.device.load_image().read_region(offset, size)

    def write_region(self, offset: int, data: bytes) -> None:
        image = self.device.load_image()
        image.write_region(offset, data)
        self.device.save_image(image)

    def reset(self) -> BootReport:
        return boot(self.device)


class DctFileLink(DeviceLink):
    """A DCT dump file. Writes replace the whole file atomically; a file cannot reboot."""

    def __init__(self, path: Path, platform: Platform | None = None) -> None:
        self.path = Path(path)
        self.platform = platform
        self.name = f"DCT file {self.path}"
        layout = layout_for_generation(platform.generation if platform else 2)
        # Opening validates the size, so a wrong file fails before anything is read or written.
        DctImage.from_file(self.path, layout)
        self._layout = layout

    def _image(self) -> DctImage:
        return DctImage.from_file(self.path, self._layout)

    def read_region(self, offset: int, size: int) -> bytes:
        return self._image().read_region(offset, size)

    def write_region(self, offset: int, data: bytes) -> None:
        image = self._image()
        image.write_region(offset, data)
        image.save(self.path)

    def reset(self) -> None:
        return None


def open_link(
    device: str | None,
    dct: Path | None,
    platform: str | None = None,
    *,
    dfu: bool = False,
    dfu_device_id: str | None = None,
) -> DeviceLink | None:
    """The link the ``--device`` / ``--dct`` / ``--dfu`` [``--platform``] options name, or None
    for none of them. ``dfu_device_id`` picks among several devices in DFU mode."""
    if sum(bool(x) for x in (device, dct, dfu)) > 1:
        raise DeviceError("give one of --device, --dct or --dfu")
    if dfu:
        # Imported here: the DFU link is a DeviceLink, so its module imports this one.
        from fermion.device.dfu import open_dfu_link

        return open_dfu_link(dfu_device_id, platform)
    parsed = Platform.parse(platform, "--platform") if platform else None
    if device:
        sim = SimDevice.open(device)
        if parsed is not None and parsed is not sim.platform:
            raise DeviceError(
                f"{sim.name}: --platform {parsed.value} does not match its platform "
                f"{sim.platform.value}"
            )
        return SimLink(sim)
    if dct:
        return DctFileLink(dct, parsed)
    if parsed is not None:
        raise DeviceError("--platform applies to --dct and --dfu only")
    return None
