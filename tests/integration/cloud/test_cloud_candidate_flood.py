"""Someone who knows a device id presents many keys he holds: a real ``fermion serve`` with its
device server, real device sockets (from other loopback addresses) and real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from cloud_harness import Cloud, Server, device_handshake, new_device_id, running_server

from fermion.keys import Algorithm, generate_device_key, load_key, public_key_pem
from harness import wait_until

PENDING_KEPT = 5  # DeviceServerConfig.max_pending_candidates


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(backend, tmp_path_factory, "candidates", device_server=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def device_port(server: Server) -> int:
    return server.device_port


def test_a_flood_of_proven_keys_is_bounded_flagged_and_cleared_by_the_device(
    cloud: Cloud, device_port: int
) -> None:
    _email, token = cloud.user_token()
    device_id = new_device_id()
    device_key = generate_device_key(Algorithm.RSA)
    reply = cloud.provision(token, device_id, public_key_pem(device_key.public_key()).decode())
    assert reply.status_code == 200, reply.text
    with cloud.http(token) as h:
        keys = h.get("/v1/server-keys").json()["keys"]
    server_key = load_key(keys[0]["public_key"].encode()).public
    # The device is at home (127.0.0.1) with its key: that address is now one it used.
    assert asyncio.run(
        device_handshake(device_port, device_key, device_id, server_key, "127.0.0.1")
    )

    def listing() -> dict[str, Any]:
        with cloud.http(token) as h:
            r = h.get(f"/v1/devices/{device_id}/keys/candidates")
            assert r.status_code == 200, r.text
            return r.json()

    # 40 handshakes with 40 keys the attacker holds, from 40 addresses of another network.
    async def flood() -> list[bool]:
        return [
            await device_handshake(
                device_port,
                generate_device_key(Algorithm.RSA),
                device_id,
                server_key,
                f"127.9.{i // 10}.{i % 10 + 1}",
            )
            for i in range(40)
        ]

    assert asyncio.run(flood()) == [False] * 40  # possession proven each time, never online
    body = wait_until(
        lambda: (b := listing())["summary"]["dropped"] == 40 - PENDING_KEPT and b,
        "35 of the 40 keys counted as dropped",
    )
    pending = [c for c in body["candidates"] if c["status"] == "pending"]
    assert len(pending) == PENDING_KEPT
    assert all(c["possession_proven"] and c["new_address"] for c in pending)
    # The most recently presented are the ones kept (the device retries; an attacker's old
    # keys age out), each with the address that presented it.
    assert {c["addresses"][0] for c in pending} == {f"127.9.3.{n}" for n in range(6, 11)}
    assert body["summary"] == {
        "pending": PENDING_KEPT,
        "distinct_keys": PENDING_KEPT,
        "distinct_addresses": PENDING_KEPT,
        "from_new_addresses": PENDING_KEPT,
        "dropped": 40 - PENDING_KEPT,
    }
    with cloud.http(token) as h:
        assert h.get(f"/v1/devices/{device_id}").json()["key_health"] == "mismatch"
    # The console's device page says the same to the person who would press Approve.
    page = console_page(cloud, token, device_id)
    assert (
        "5 different keys from 5 addresses are waiting, 5 from addresses this device never "
        "used; 35 more were not kept" in page
    )
    assert "data-new-address" in page and "data-other-candidates" in page

    # The device itself, re-keyed, from the address it used: it outranks every key presented
    # from elsewhere, so the attacker's keys cannot push it out.
    new_key = generate_device_key(Algorithm.RSA)
    assert not asyncio.run(
        device_handshake(device_port, new_key, device_id, server_key, "127.0.0.1")
    )
    body = wait_until(
        lambda: (b := listing())["summary"]["dropped"] == 40 - PENDING_KEPT + 1 and b,
        "the oldest attacker key dropped for the device's own",
    )
    own = [c for c in body["candidates"] if c["addresses"] == ["127.0.0.1"]]
    assert len(own) == 1 and own[0]["status"] == "pending" and not own[0]["new_address"]
    more = generate_device_key(Algorithm.RSA)
    assert not asyncio.run(device_handshake(device_port, more, device_id, server_key, "127.9.9.9"))
    body = wait_until(
        lambda: (b := listing())["summary"]["dropped"] == 40 - PENDING_KEPT + 2 and b,
        "one more attacker key counted",
    )
    assert any(
        c["addresses"] == ["127.0.0.1"] and c["status"] == "pending" for c in body["candidates"]
    )

    # The device comes back with its current key: the alarm is over, nothing is deleted.
    assert asyncio.run(
        device_handshake(device_port, device_key, device_id, server_key, "127.0.0.1")
    )
    body = wait_until(
        lambda: (b := listing())["summary"]["pending"] == 0 and b, "pending keys superseded"
    )
    assert len(body["candidates"]) == PENDING_KEPT
    assert {c["status"] for c in body["candidates"]} == {"superseded"}
    assert all(c["decided_by"].startswith("device: handshake") for c in body["candidates"])
    with cloud.http(token) as h:
        assert h.get(f"/v1/devices/{device_id}").json()["key_health"] == "ok"
        stale = body["candidates"][0]["id"]
        r = h.post(f"/v1/devices/{device_id}/keys/candidates/{stale}/approve")
        assert r.status_code == 409 and r.json()["ok"] is False, r.text
        assert "superseded" in r.json()["error"]
    page = console_page(cloud, token, device_id)
    assert "No presented key is waiting for a decision." in page
    assert "superseded" in page


def console_page(cloud: Cloud, token: str, device_id: str) -> str:
    with cloud.http() as h:
        r = h.get(f"/console/devices/{device_id}", headers={"Cookie": f"fermion_console={token}"})
        assert r.status_code == 200, r.text[:500]
        return r.text


def test_an_address_the_device_used_is_not_flagged(cloud: Cloud, device_port: int) -> None:
    _email, token = cloud.user_token()
    device_id = new_device_id()
    device_key = generate_device_key(Algorithm.RSA)
    reply = cloud.provision(token, device_id, public_key_pem(device_key.public_key()).decode())
    assert reply.status_code == 200, reply.text
    with cloud.http(token) as h:
        keys = h.get("/v1/server-keys").json()["keys"]
    server_key = load_key(keys[0]["public_key"].encode()).public
    for source in ("127.0.0.1", "127.20.0.7"):
        assert asyncio.run(device_handshake(device_port, device_key, device_id, server_key, source))
    other = generate_device_key(Algorithm.RSA)
    assert not asyncio.run(
        device_handshake(device_port, other, device_id, server_key, "127.20.0.7")
    )
    with cloud.http(token) as h:

        def found() -> list[dict[str, Any]]:
            r = h.get(f"/v1/devices/{device_id}/keys/candidates")
            return [c for c in r.json()["candidates"] if c["possession_proven"]]

        (candidate,) = wait_until(found, "the candidate recorded")
    assert candidate["addresses"] == ["127.20.0.7"] and candidate["new_address"] is False
