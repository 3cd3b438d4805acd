"""Simulated devices against the live device server: online, brownout, key repair, server key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from devices_harness import STEP, Cloud, device_public, wait_for
from typer.testing import CliRunner

from fermion.cli import keys_cmd
from fermion.device import faults
from fermion.device.boot import boot
from fermion.device.online import (
    LED_CONNECTED,
    LED_SERVER_KEY,
    Fleet,
    SimProfile,
)
from fermion.keys import LoadedKey, generate_device_key, generate_server_key, public_key_der
from fermion.protocol import Outcome

FAST = SimProfile(
    ping_interval=0.3,
    ping_timeout=3.0,
    backoff_initial=0.2,
    backoff_max=0.5,
    flash_check_interval=0.1,
)


async def test_twenty_devices_connect_and_stay_online_through_pings(cloud: Cloud) -> None:
    devices = [await cloud.new_device() for _ in range(20)]
    fleet = Fleet.of(devices, profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: len(cloud.server.sessions) == 20)
        # Several ping intervals pass; nobody reconnects and every device stays online.
        await asyncio.sleep(FAST.ping_interval * 5)
        assert all(r.connections == 1 for r in fleet.runners)
        assert all(r.led == LED_CONNECTED for r in fleet.runners)
        await cloud.server.recorder.flush()
        for device in devices:
            row = await cloud.device(device.id)
            assert row is not None and row.online and row.last_ip_address == "127.0.0.1"
            status = device.load_status()
            assert status.online and status.extra["led"] == LED_CONNECTED
            activity = cloud.server.activity.get(device.id)
            assert activity is not None and 1 in activity.describe and 2 in activity.describe
            assert any(e[1] == "particle/device/updates/enabled" for e in activity.events)
    finally:
        await fleet.stop()
    await wait_for(lambda: not cloud.server.sessions)
    await cloud.server.recorder.flush()
    assert not (await cloud.device(devices[0].id)).online  # type: ignore[union-attr]


async def test_brownout_key_mismatch_is_proven_then_approved(cloud: Cloud, tmp_path: Path) -> None:
    devices = [await cloud.new_device() for _ in range(3)]
    victim = devices[0]
    old_fp = device_public(victim).fingerprint.hex
    fleet = Fleet.of(devices, profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: len(cloud.server.sessions) == 3)
        # Power fails while the DCT is rewritten: keys regenerate, server key/address fall back.
        faults.brownout(victim)
        boot(victim)
        new_fp = device_public(victim).fingerprint.hex
        assert new_fp != old_fp
        await wait_for(lambda: victim.id not in cloud.server.sessions)
        # The repair a person does first: point the device at this cloud again.
        key_file = tmp_path / "cloud.der"
        key_file.write_bytes(await cloud.server_key_file())
        result = CliRunner().invoke(keys_cmd.app, ["server", str(key_file), "--device", victim.id])
        assert result.exit_code == 0, result.output

        async def proven() -> bool:
            found = await cloud.candidates(victim.id)
            return bool(found) and found[0].possession_proven

        await wait_for(proven)
        (candidate,) = await cloud.candidates(victim.id)
        assert candidate.fingerprint == new_fp and candidate.status == "pending"
        assert candidate.remote_address == "127.0.0.1"
        mismatch = [
            o
            for o in await cloud.outcomes()
            if o.device_id == victim.id and o.outcome == Outcome.KEY_MISMATCH
        ]
        assert mismatch and mismatch[0].fingerprint == new_fp
        assert old_fp[:16] in (mismatch[0].detail or "")
        assert "possession proven" in json.loads(mismatch[0].detail or "{}")["reason"]
        # Never auto-accepted: the device stays offline while the candidate waits.
        await asyncio.sleep(1.0)
        assert victim.id not in cloud.server.sessions
        row = await cloud.device(victim.id)
        assert row is not None and row.key_health == "mismatch"
        # The owner approves it through the REST API (Developer or above; audited).
        reply = await cloud.as_owner(
            victim.id, "POST", f"/v1/devices/{victim.id}/keys/candidates/{candidate.id}/approve"
        )
        assert reply.status_code == 200, reply.text
        # The server holds the session a moment before the device has read its Hello.
        await wait_for(lambda: fleet.runner(victim.id).led == LED_CONNECTED)
        await wait_for(lambda: victim.id in cloud.server.sessions)
        # The others never noticed.
        assert all(fleet.runner(d.id).connections == 1 for d in devices[1:]), [
            json.dumps(d.load_status().to_json()) for d in devices[1:]
        ]
        (candidate,) = await cloud.candidates(victim.id)
        assert candidate.status == "approved"
    finally:
        await fleet.stop()


async def test_another_clouds_server_key_is_orange_then_keys_server_fixes_it(
    cloud: Cloud, tmp_path: Path
) -> None:
    device = await cloud.new_device()
    other = tmp_path / "other-cloud.der"
    other.write_bytes(public_key_der(generate_server_key().public_key()))
    faults.overwrite_server_key(device, other)
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        runner = fleet.runner(device.id)
        await wait_for(lambda: runner.led == LED_SERVER_KEY)
        status = device.load_status()
        assert status.extra["led"] == LED_SERVER_KEY
        assert status.last_protocol_error is not None
        assert status.last_protocol_error["code"] == 26
        found = [o for o in await cloud.outcomes() if o.outcome == Outcome.SERVER_KEY_MISMATCH]
        assert found and found[0].device_id is None and found[0].remote_address == "127.0.0.1"
        key_file = tmp_path / "cloud.der"
        key_file.write_bytes(await cloud.server_key_file())
        result = CliRunner().invoke(keys_cmd.app, ["server", str(key_file), "--device", device.id])
        assert result.exit_code == 0, result.output
        # The server holds the session a moment before the device has read its Hello.
        await wait_for(lambda: runner.led == LED_CONNECTED)
        await wait_for(lambda: device.id in cloud.server.sessions)
    finally:
        await fleet.stop()


async def test_key_change_drops_the_open_session(cloud: Cloud) -> None:
    device = await cloud.new_device()
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: device.id in cloud.server.sessions)
        link = cloud.server.sessions[device.id]
        await cloud.register(device, LoadedKey(generate_device_key().public_key()))
        await wait_for(lambda: cloud.server.sessions.get(device.id) is not link)
        await cloud.register(device, device_public(device))
        await wait_for(lambda: device.id in cloud.server.sessions)
    finally:
        await fleet.stop()


async def test_rotation_accepts_old_and_new_until_the_old_is_retired(cloud: Cloud) -> None:
    from fermion.cloud.devices import rotation

    device = await cloud.new_device()  # holds the key that is about to become "previous"
    async with asyncio.timeout(STEP):
        await rotation.rotate(cloud.store, "user:test")
    await wait_for(lambda: cloud.server.keys is not None and cloud.server.keys.previous is not None)
    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: device.id in cloud.server.sessions)
        async with asyncio.timeout(STEP):
            await rotation.retire(cloud.store, "user:test")
        await wait_for(lambda: cloud.server.keys is not None and cloud.server.keys.previous is None)
        # The open session stays; the next connection is refused like another cloud's key.
        cloud.server.sessions[device.id].close()
        await wait_for(lambda: fleet.runner(device.id).led == LED_SERVER_KEY)
    finally:
        await fleet.stop()


async def test_key_error_bits_are_published_after_connecting(cloud: Cloud) -> None:
    from fermion.device.dct import write_server_key_file
    from fermion.keys.serverfile import Transport, encode_server_key_file

    device = await cloud.new_device()
    # The right server key but no address: Device OS falls back to the backup address and sets
    # SERVER_ADDRESS_BLANK (4); --cloud still takes it to this cloud.
    image = device.load_image()
    key = (await cloud.server_private_key()).public_key()
    write_server_key_file(image, Transport.TCP, encode_server_key_file(key, None, None))
    device.save_image(image)
    boot(device)
    fleet = Fleet.of([device], cloud=("127.0.0.1", cloud.port), profile=FAST)
    fleet.start()
    try:

        def published() -> bool:
            activity = cloud.server.activity.get(device.id)
            return activity is not None and any(
                e[1] == "spark/device/key/error" and e[2] == b"4" for e in activity.events
            )

        await wait_for(published)
    finally:
        await fleet.stop()
