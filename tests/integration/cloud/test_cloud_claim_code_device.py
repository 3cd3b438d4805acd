"""A device presents the claim code it was given at setup (``spark/device/claim/code``, sent
right after the handshake): the cloud claims it for the code's owner, once. A real
``fermion serve`` with its device server, a real device socket, real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cloud_harness import Cloud, Server, free_port, fresh_database, new_device_id

from fermion.keys import Algorithm, generate_device_key, load_key, public_key_pem
from fermion.protocol import NEED_DATA, coap
from fermion.protocol.connection import CLAIM_CODE_EVENT, Connected, DeviceConnection


@pytest.fixture(scope="module")
def device_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(
    backend: str, device_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"claimcode-{backend}")
    url, drop = fresh_database(backend, tmp)
    srv = Server(url, tmp, ["--device-port", str(device_port)])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        drop()


async def connect_and_present(
    port: int, device_key: Any, device_id: str, server_key: Any, code: str, until: Any
) -> bool:
    """Handshake, publish ``code`` as Device OS does, and stay connected until ``until()``."""
    conn = DeviceConnection(device_key, bytes.fromhex(device_id), server_key, coap.Hello())
    async with asyncio.timeout(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                data = await reader.read(4096)
                conn.receive_data(data)
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, Connected):
                        conn.publish(CLAIM_CODE_EVENT, code.encode(), private=True)
                        writer.write(conn.data_to_send())
                        while not await asyncio.to_thread(until):
                            await asyncio.sleep(0.2)
                        return True
                writer.write(conn.data_to_send())
                if not data or conn.closed:
                    return False
        finally:
            writer.close()


def _device(cloud: Cloud, token: str) -> tuple[str, Any, Any]:
    """A device in no product that nobody owns (uploaded, then released), and the server key."""
    device_id = new_device_id()
    device_key = generate_device_key(Algorithm.RSA)
    reply = cloud.provision(token, device_id, public_key_pem(device_key.public_key()).decode())
    assert reply.status_code == 200, reply.text
    with cloud.http(token) as h:
        assert h.delete(f"/v1/devices/{device_id}").status_code == 200
        keys = h.get("/v1/server-keys").json()["keys"]
    return device_id, device_key, load_key(keys[0]["public_key"].encode()).public


def test_a_device_presenting_a_users_claim_code_is_claimed_to_that_user_once(
    cloud: Cloud, device_port: int
) -> None:
    _, setup = cloud.user_token()
    device_id, device_key, server_key = _device(cloud, setup)
    _, buyer = cloud.user_token()
    with cloud.http(buyer) as h:
        made = h.post("/v1/device_claims")
        assert made.status_code == 200, made.text
        code = made.json()["claim_code"]
        assert h.get(f"/v1/devices/{device_id}").status_code == 404  # not theirs yet

    def owned() -> bool:
        with cloud.http(buyer) as h:
            return h.get(f"/v1/devices/{device_id}").status_code == 200

    assert asyncio.run(
        connect_and_present(device_port, device_key, device_id, server_key, code, owned)
    )
    with cloud.http(buyer) as h:
        events = h.get("/v1/audit", params={"device_id": device_id}).json()["events"]
    assert any(e["action"] == "device.claim" for e in events), events

    # Used once: the same code presented by another unowned device claims nothing.
    other_id, other_key, _ = _device(cloud, setup)
    deadline = time.monotonic() + 3

    def waited() -> bool:
        return time.monotonic() > deadline

    asyncio.run(connect_and_present(device_port, other_key, other_id, server_key, code, waited))
    with cloud.http(buyer) as h:
        assert h.get(f"/v1/devices/{other_id}").status_code == 404
