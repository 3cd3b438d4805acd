"""The fleet's queries at a fleet's size, on both stores: a product seen at more addresses than
one SQL expression may name (SQLite's depth limit is 1000) still gets its fleet page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fermion.cloud import admin
from fermion.cloud.console.fleet import FleetQuery, Health, load_fleet, product_fleet
from fermion.cloud.devices.registry import OutcomeFact, write_facts
from fermion.cloud.store import Store, upgrade
from fermion.cloud.store.models import Device
from fermion.protocol.errors import Outcome
from integration.cloud.cloud_harness import BACKENDS, fresh_database

from .harness import PASSWORD

pytestmark = pytest.mark.integration
DEVICES = 1500  # each at its own address
# Addresses where a server-key refusal came from (under the device server's cap on the
# addresses of unidentified refusals it keeps, the registry's max_unidentified).
REFUSED = 900


def address(i: int) -> str:
    return f"10.{i // 250}.{i % 250}.1"


async def fleet_at_scale(url: str) -> dict[Health, int]:
    store = Store(url)
    try:
        await admin.create_user(store, "big@example.com", PASSWORD)
        product = await admin.create_product(store, "Big fleet", "big@example.com", "photon")
        async with store.write() as session:
            for i in range(DEVICES):
                session.add(
                    Device(id=f"{i:024x}", product_id=product.id, last_ip_address=address(i))
                )
            # One address is shared with a device outside the product: not the product's.
            session.add(Device(id="f" * 24, last_ip_address=address(0) + ":4000"))
        async with store.write() as session:
            await write_facts(
                session,
                [
                    OutcomeFact(
                        Outcome.SERVER_KEY_MISMATCH, None, f"{address(i)}:5000", "no key opens"
                    )
                    for i in range(REFUSED)
                ],
            )
        async with store.read() as session:
            fleet = await load_fleet(session, product_fleet(product.id), FleetQuery())
        assert fleet.total == DEVICES
        return fleet.counts
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_key_card_at_fifteen_hundred_addresses(backend: str, tmp_path: Path) -> None:
    url, drop = fresh_database(backend, tmp_path)
    try:
        upgrade(url)
        counts = asyncio.run(fleet_at_scale(url))
    finally:
        drop()
    assert counts[Health.SERVER_KEY] == REFUSED - 1
