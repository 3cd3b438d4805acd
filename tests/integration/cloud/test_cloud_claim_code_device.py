"""A device presents the claim code it was given at setup (``spark/device/claim/code``, sent
right after the handshake): the cloud claims it for the code's owner, once. A real
``fermion serve`` with its device server, a real device socket, real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cloud_harness import Cloud, Server, device_handshake, new_device_id, running_server

from fermion.keys import Algorithm, generate_device_key, load_key, public_key_pem
from fermion.protocol.connection import CLAIM_CODE_EVENT


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(backend, tmp_path_factory, "claimcode", device_server=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def device_port(server: Server) -> int:
    return server.device_port


def present(code: str) -> Any:
    """Publish ``code`` as Device OS does right after the handshake."""
    return lambda conn: conn.publish(CLAIM_CODE_EVENT, code.encode(), private=True)


async def until(check: Any) -> None:
    while not await asyncio.to_thread(check):
        await asyncio.sleep(0.2)


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
        device_handshake(
            device_port,
            device_key,
            device_id,
            server_key,
            on_connected=present(code),
            hold=lambda: until(owned),
        )
    )
    with cloud.http(buyer) as h:
        events = h.get("/v1/audit", params={"device_id": device_id}).json()["events"]
    assert any(e["action"] == "device.claim" for e in events), events

    # Used once: the same code presented by another unowned device claims nothing.
    other_id, other_key, _ = _device(cloud, setup)
    deadline = time.monotonic() + 3

    def waited() -> bool:
        return time.monotonic() > deadline

    asyncio.run(
        device_handshake(
            device_port,
            other_key,
            other_id,
            server_key,
            on_connected=present(code),
            hold=lambda: until(waited),
        )
    )
    with cloud.http(buyer) as h:
        assert h.get(f"/v1/devices/{other_id}").status_code == 404
