"""The console over PostgreSQL, the production store: the fleet's grouped and sorted queries,
the device page, and a change made through it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from integration.cloud.cloud_harness import fresh_database

from .conftest import CUSTOMER, DEVELOPER, OWNER, seeded_cloud
from .harness import Cloud, browser_context
from .test_console import log_in
from .wire import brownout_key, present_key, reconnect

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def pg_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    home = tmp_path_factory.mktemp("console-pg")
    url, drop = fresh_database("postgres", home)
    try:
        yield from seeded_cloud(home, url)
    finally:
        drop()


def test_fleet_device_and_approve_on_postgres(pg_cloud: Cloud, playwright: Any) -> None:
    cloud = pg_cloud
    refused = cloud.provision(OWNER, "3f0000000000000000000001", "pg-refused")
    fine = cloud.provision(OWNER, "3f0000000000000000000002", "pg-fine")
    cloud.claim_for_customer(CUSTOMER, fine.id)
    reconnect(cloud, fine)
    new_key = brownout_key()
    present_key(cloud, refused, new_key, proven=True)

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, DEVELOPER, f"/console/p/{cloud.product}?sort=health")
        expect(page.locator('a.card[data-health="ok"] .count')).to_have_text("1")
        expect(page.locator('a.card[data-health="mismatch_proven"] .count')).to_have_text("1")
        expect(page.locator(f'tr[data-device="{fine.id}"]')).to_contain_text(CUSTOMER)
        page.goto(cloud.url + f"/console/p/{cloud.product}?q=pg-&sort=owner&dir=desc&page=9")
        expect(page.locator("tbody tr[data-device]")).to_have_count(2)

        page.goto(cloud.url + f"/console/devices/{refused.id}")
        candidate = page.locator("#candidate")
        expect(candidate.locator('[data-fp="presented"]')).to_have_text(new_key.fingerprint.sha256)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Approve").click()
        expect(page.locator(".notice")).to_contain_text("Key approved")
        reconnect(cloud, refused, key=new_key)
        expect(page.locator('[data-live="health"]')).to_contain_text("OK", timeout=15_000)
        expect(page).to_have_url(re.compile(rf"/console/devices/{refused.id}"))

    assert cloud.device_json(OWNER, refused.id)["key_fingerprint"] == new_key.fingerprint.sha256
