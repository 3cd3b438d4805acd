"""Device platforms the cloud knows: Particle's platform ids and the transport each uses."""

from __future__ import annotations

from dataclasses import dataclass

from fermion.errors import FermionError


@dataclass(frozen=True)
class Platform:
    name: str
    id: int
    transport: str  # tcp (RSA device keys) or udp (EC P-256 device keys)


PLATFORMS = {
    p.name: p
    for p in (
        Platform("photon", 6, "tcp"),
        Platform("p1", 8, "tcp"),
        Platform("electron", 10, "udp"),
        Platform("argon", 12, "udp"),
        Platform("boron", 13, "udp"),
    )
}
BY_ID = {p.id: p for p in PLATFORMS.values()}
DEFAULT_TCP = PLATFORMS["photon"]
DEFAULT_UDP = PLATFORMS["argon"]


def platform(name_or_id: str | int) -> Platform:
    key = str(name_or_id).strip().lower()
    if key.isascii() and key.isdigit() and int(key) in BY_ID:
        return BY_ID[int(key)]
    if key in PLATFORMS:
        return PLATFORMS[key]
    names = ", ".join(PLATFORMS)
    raise FermionError(f"platform: {name_or_id!r} is not one of {names}")
