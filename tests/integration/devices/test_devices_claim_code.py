"""The simulated device sends the claim code in its DCT after the handshake, as Device OS does,
and the device server claims the device for the code's owner; the device then forgets the code
and counts itself claimed."""

from __future__ import annotations

from devices_harness import Cloud, wait_for

from fermion.cloud import admin, claimcodes
from fermion.device.dct import read_claim_code, read_claimed, write_claim_code
from fermion.device.online import LED_CONNECTED, Fleet, SimProfile

FAST = SimProfile(ping_interval=0.3, ping_timeout=3.0, backoff_initial=0.2, backoff_max=0.5)


async def test_a_device_with_a_claim_code_is_claimed_by_its_owner(cloud: Cloud) -> None:
    device = await cloud.new_device()  # registered, in no product, owned by nobody
    user = await admin.create_user(cloud.store, f"buyer-{device.id}@example.com", None)
    async with cloud.store.write() as session:
        code = await claimcodes.issue(session, actor="test", user_id=user.id)
    image = device.load_image()
    write_claim_code(image, code)  # what setup (USB, SoftAP, BLE) leaves in the DCT
    device.save_image(image)

    fleet = Fleet.of([device], profile=FAST)
    fleet.start()
    try:
        await wait_for(lambda: fleet.runner(device.id).led == LED_CONNECTED)

        async def claimed() -> bool:
            row = await cloud.device(device.id)
            return row is not None and row.owner_user_id == user.id

        await wait_for(claimed)
        image = device.load_image()
        assert read_claim_code(image) is None and read_claimed(image)
        # Forgetting the code is the device's own write: it stays connected, no reset.
        assert fleet.runner(device.id).connections == 1
    finally:
        await fleet.stop()
