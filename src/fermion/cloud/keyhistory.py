"""Recognising a restored key: a presented key that is an earlier version in the device's history.

A device running DeviceKeyHelperRK (or one whose flash was restored from a dump) comes back with
a key the cloud held before. The history (``device_keys``) is append-only, so the match is a
fact worth telling the operator, with the one-click fix. It is never accepted automatically
(DESIGN principle 5): a key that was replaced may have been replaced because it leaked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.store.models import Device, DeviceKey


@dataclass(frozen=True)
class EarlierVersion:
    device_id: str
    version: int
    created_at: datetime

    @property
    def restore_path(self) -> str:
        return f"/v1/devices/{self.device_id}/keys/{self.version}/restore"

    @property
    def note(self) -> str:
        day = self.created_at.strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"restored key: matches version {self.version} from {day}; not accepted "
            f"automatically: POST {self.restore_path} makes it current again"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "created_at": self.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "restore": self.restore_path,
            "message": self.note,
        }


async def earlier_versions(
    session: AsyncSession, device_id: str, fingerprints: Iterable[str]
) -> dict[str, EarlierVersion]:
    """For each fingerprint (SHA-256 hex) that is a non-current version of the device's key, the
    newest such version."""
    wanted = set(fingerprints)
    if not wanted:
        return {}
    current = await session.scalar(select(Device.current_key_id).where(Device.id == device_id))
    rows = await session.execute(
        select(DeviceKey.id, DeviceKey.fingerprint, DeviceKey.version, DeviceKey.created_at)
        .where(DeviceKey.device_id == device_id, DeviceKey.fingerprint.in_(wanted))
        .order_by(DeviceKey.version)
    )
    found: dict[str, EarlierVersion] = {}
    current_fps = set()
    for key_id, fingerprint, version, created_at in rows:
        if key_id == current:
            current_fps.add(fingerprint)
        else:
            found[fingerprint] = EarlierVersion(device_id, version, created_at)
    # The current key is not "restored", even when an earlier version had the same fingerprint.
    return {k: v for k, v in found.items() if k not in current_fps}
