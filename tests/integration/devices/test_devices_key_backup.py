"""DeviceKeyHelperRK end to end against the live device server, and the cloud recognising a
restored key from the device's key history."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from devices_harness import Cloud, device_public, wait_for
from typer.testing import CliRunner

from fermion.cli import keys_cmd
from fermion.device import faults
from fermion.device.boot import boot
from fermion.device.dct import write_server_key_file
from fermion.device.keyhelper import MAGIC
from fermion.device.online import LED_CONNECTED, Fleet, SimProfile
from fermion.device.platforms import Platform
from fermion.device.store import SimDevice
from fermion.keys import LoadedKey, generate_device_key
from fermion.keys.serverfile import Transport
from fermion.protocol import Outcome

FAST = SimProfile(
    ping_interval=0.3,
    ping_timeout=3.0,
    backoff_initial=0.2,
    backoff_max=0.5,
    flash_check_interval=0.1,
)

_n = itertools.count()


async def device_with_backup(cloud: Cloud, kind: str) -> SimDevice:
    device = SimDevice.create(Platform.PHOTON, cloud.home, key_backup=kind)
    image = device.load_image()
    write_server_key_file(image, Transport.TCP, await cloud.server_key_file())
    device.save_image(image)
    boot(device)
    await cloud.register(device)
    return device


async def rest(cloud: Cloud, device_id: str, method: str, path: str) -> Any:
    reply = await cloud.as_owner(device_id, method, path)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_key_backup_restores_the_working_key_after_a_brownout(
    cloud: Cloud, tmp_path: Path
) -> None:
    device = await device_with_backup(cloud, "eeprom")
    good = device_public(device).fingerprint.hex
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: device.id in cloud.server.sessions)
        await wait_for(lambda: (device.folder / "eeprom.bin").exists())
        assert (device.folder / "eeprom.bin").read_bytes()[:4] == MAGIC.to_bytes(4, "little")
        faults.brownout(device)
        boot(device)  # a new key the cloud does not hold
        assert device_public(device).fingerprint.hex != good
        key_file = tmp_path / "cloud.der"
        key_file.write_bytes(await cloud.server_key_file())
        result = CliRunner().invoke(keys_cmd.app, ["server", str(key_file), "--device", device.id])
        assert result.exit_code == 0, result.output

        # Refused -> the helper writes the backup back and resets -> online with the old key.
        await wait_for(
            lambda: device.load_status().extra.get("key_backup", {}).get("event") == "restored"
        )
        await wait_for(lambda: fleet.runner(device.id).led == LED_CONNECTED)
        assert device_public(device).fingerprint.hex == good
        assert "keys restored from backup" in device.load_status().extra["key_backup"]["message"]
        row = await cloud.device(device.id)
        assert row is not None and row.current_key_id is not None
    finally:
        await fleet.stop()


async def test_a_restored_earlier_key_is_recognised_but_not_accepted(cloud: Cloud) -> None:
    device = await cloud.new_device()
    old_fp = device_public(device).fingerprint.hex
    # Someone uploads another key (v2) while the device keeps (or restored) version 1.
    await cloud.register(device, LoadedKey(generate_device_key().public_key()))
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:

        async def proven() -> bool:
            found = await cloud.candidates(device.id)
            return bool(found) and found[0].possession_proven

        await wait_for(proven)
        reasons = [
            json.loads(o.detail or "{}").get("reason", "")
            for o in await cloud.outcomes()
            if o.device_id == device.id and o.outcome == Outcome.KEY_MISMATCH
        ]
        assert any("restored key: matches version 1 from" in r for r in reasons), reasons
        assert device.id not in cloud.server.sessions  # never auto-accepted

        body = await rest(cloud, device.id, "GET", f"/v1/devices/{device.id}/keys/candidates")
        (candidate,) = body["candidates"]
        restored = candidate["restored_from"]
        assert restored["version"] == 1 and candidate["status"] == "pending"
        assert restored["restore"] == f"/v1/devices/{device.id}/keys/1/restore"
        assert "matches version 1" in restored["message"] and "restore" in restored["message"]

        # The one-click fix: make version 1 current again; the device comes online with it.
        out = await rest(cloud, device.id, "POST", f"/v1/devices/{device.id}/keys/1/restore")
        assert out["changed"] is True
        await wait_for(lambda: fleet.runner(device.id).led == LED_CONNECTED)
        assert device_public(device).fingerprint.hex == old_fp
        body = await rest(cloud, device.id, "GET", f"/v1/devices/{device.id}/keys/candidates")
        assert body["candidates"][0]["restored_from"] is None  # it is current now
    finally:
        await fleet.stop()
