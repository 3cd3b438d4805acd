"""The platforms Fermion simulates and what each implies for keys and transport.

Platform ids are Particle's (``PLATFORM_ID``). Gen 2 (STM32F2xx) keeps the DCT in a flash sector
that a brownout during a write can erase; Gen 3 (nRF52840) keeps it as a file on LittleFS, which a
reformat loses. Photon/P1 builds are TCP-only; Argon/Boron are UDP-only; the Electron defaults to
UDP and can be switched to TCP through ``cloud_transport`` (reference §2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fermion.errors import DeviceError
from fermion.keys.serverfile import Transport


class Platform(StrEnum):
    PHOTON = "photon"
    P1 = "p1"
    ELECTRON = "electron"
    ARGON = "argon"
    BORON = "boron"

    @classmethod
    def parse(cls, value: str, source: str = "platform") -> Platform:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise DeviceError(f"{source}: unknown platform {value!r} (one of {names})") from None

    @property
    def info(self) -> PlatformInfo:
        return _INFO[self]

    @property
    def id(self) -> int:
        return self.info.platform_id

    @property
    def generation(self) -> int:
        return self.info.generation

    @property
    def default_transport(self) -> Transport:
        return self.info.default_transport

    @property
    def transport_switchable(self) -> bool:
        return self.info.switchable


@dataclass(frozen=True)
class PlatformInfo:
    platform_id: int
    generation: int
    default_transport: Transport
    # Only the Electron reads cloud_transport; the others are built for one transport.
    switchable: bool


_INFO: dict[Platform, PlatformInfo] = {
    Platform.PHOTON: PlatformInfo(6, 2, Transport.TCP, False),
    Platform.P1: PlatformInfo(8, 2, Transport.TCP, False),
    Platform.ELECTRON: PlatformInfo(10, 2, Transport.UDP, True),
    Platform.ARGON: PlatformInfo(12, 3, Transport.UDP, False),
    Platform.BORON: PlatformInfo(13, 3, Transport.UDP, False),
}


def transport_for(platform: Platform, cloud_transport: int) -> Transport:
    """The transport the firmware uses, given the DCT's ``cloud_transport`` byte.

    Only 0xFF means UDP (``HAL_Feature_Get(FEATURE_CLOUD_UDP)``); any other byte is TCP. The byte
    matters only where the firmware reads it (the Electron).
    """
    if not platform.transport_switchable:
        return platform.default_transport
    return Transport.UDP if cloud_transport == 0xFF else Transport.TCP
