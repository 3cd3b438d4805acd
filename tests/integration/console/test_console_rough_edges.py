"""The console's rough edges a newcomer met (issue #12 item 7) and /docs without internet (item
8), each checked in Chromium as a person meets it, at 1280 px and at a phone's 390 px."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from fermion.cloud import admin
from fermion.cloud.devices.registry import OutcomeFact, Presence
from fermion.cloud.store.models import utcnow
from fermion.keys import Algorithm, generate_device_key, load_key, public_key_pem
from fermion.protocol.errors import Outcome

from .conftest import OWNER, VIEWER
from .harness import PASSWORD, Cloud, Device, browser_context, screenshot
from .test_console import FITS, log_in
from .wire import brownout_key, present_key, reconnect, record, server_key_refused

pytestmark = pytest.mark.integration
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SOLO = "solo@example.com"  # on no product's team
# Long unbroken words, the kind that pushed cards wider than a phone.
LONG_EMAIL = "firstname.middlename.lastname.for-overflow@an-extremely-long-subdomain.example.com"


def personal_device(cloud: Cloud, owner: str, device_id: str, name: str) -> Device:
    """A device the user creates with their own account, in no product (POST /v1/provisioning
    without product_id), as a maker with one Photon would."""
    key = load_key(public_key_pem(generate_device_key(Algorithm.RSA).public_key()), "mine")
    with cloud.api(owner) as c:
        r = c.post(
            f"/v1/provisioning/{device_id}",
            data={
                "deviceID": device_id,
                "publicKey": public_key_pem(key.public).decode(),
                "algorithm": "rsa",
            },
        )
        assert r.status_code == 200, r.text
        assert c.put(f"/v1/devices/{device_id}", data={"name": name}).status_code == 200
    return Device(device_id, key)


def seen_at(cloud: Cloud, device: Device, address: str) -> None:
    """The device handshook from ``address`` (so the cloud ties the address to it)."""
    reconnect(cloud, device, address)


def errors_logged(page: Page) -> list[str]:
    """Every response of 400 or more the page's loads meet, as 'status url' (filled in place)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return failed


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_a_user_on_no_team_lands_on_my_devices(
    cloud: Cloud, playwright: Any, viewport: dict[str, int]
) -> None:
    if SOLO not in cloud.tokens:
        cloud.admin(admin.create_user, SOLO, PASSWORD)
        personal_device(cloud, SOLO, "1d0034000fffffffffff5001", "desk-lamp")
    with browser_context(playwright, viewport=viewport) as browser:
        page = browser.new_page()
        log_in(page, cloud, SOLO)
        expect(page).to_have_url(re.compile(r"/console/mine$"))
        expect(page.get_by_role("heading", level=1)).to_contain_text("My devices")
        row = page.locator('tr[data-device="1d0034000fffffffffff5001"]')
        expect(row).to_contain_text("desk-lamp")
        # No team is no dead end: the hint is there, beside the devices.
        expect(page.locator("main")).to_contain_text("not on any product's team yet")
        assert page.evaluate(FITS)
        if viewport is DESKTOP:
            screenshot(page, "console-mine.png")
        row.get_by_role("link", name="1d0034000fffffffffff5001").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("desk-lamp")
        assert page.evaluate(FITS)

    # A team member has the same page for their own devices, linked from every page.
    personal_device(cloud, OWNER, "1d0034000fffffffffff5002", "owners-own")
    with browser_context(playwright, viewport=viewport) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}")
        expect(page.locator('tr[data-device="1d0034000fffffffffff5002"]')).to_have_count(0)
        page.get_by_role("link", name="My devices").first.click()
        expect(page.locator('tr[data-device="1d0034000fffffffffff5002"]')).to_be_visible()
        expect(page.locator('tr[data-device="1d0034000fffffffffff5001"]')).to_have_count(0)


def test_device_facts_turn_green_with_the_badges(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff5003", "comes-back")
    key = brownout_key()
    present_key(cloud, device, key)
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/devices/{device.id}")
        outcome = page.locator('[data-live="last_outcome"]')
        handshake = page.locator('[data-live="last_handshake"]')
        expect(outcome).to_have_text("key_mismatch")
        expect(handshake).to_have_text("—")
        # The device comes back with the key the cloud holds (no reload from here on).
        reconnect(cloud, device, "127.0.0.1:50999")
        expect(page.locator('[data-live="online"]')).to_contain_text("Online", timeout=20_000)
        expect(outcome).to_have_text("ok")
        expect(handshake).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
        expect(page.locator('[data-live="last_address"]')).to_have_text("127.0.0.1:50999")


def test_recent_events_name_keys_as_the_page_does(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff5004", "two-keys")
    presented = brownout_key()
    present_key(cloud, device, presented)
    # The device server's reason names both keys by their first 16 hex digits (devices/server).
    reason = (
        f"presented key {presented.fingerprint.hex[:16]}, "
        f"expected {device.key.fingerprint.hex[:16]}"
    )
    record(
        cloud,
        OutcomeFact(
            Outcome.KEY_MISMATCH, device.id, "127.0.0.1:50124", reason, presented.fingerprint.hex
        ),
    )
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/devices/{device.id}")
        events = page.locator("ul.events")
        # The same SHA256:base64 as the facts above, the CLI and the API: matched by eye.
        expect(events).to_contain_text(f"presented key {presented.fingerprint.sha256}")
        expect(events).to_contain_text(f"expected {device.key.fingerprint.sha256}")
        expect(events).not_to_contain_text(presented.fingerprint.hex[:16])
        expect(page.locator('[data-live="key"]')).to_contain_text(device.key.fingerprint.sha256)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280px", "390px"])
def test_wrong_password_shows_one_error_and_keeps_the_email(
    cloud: Cloud, playwright: Any, viewport: dict[str, int]
) -> None:
    with browser_context(playwright, viewport=viewport) as browser:
        page = browser.new_page()
        page.goto(cloud.url + "/console/login")
        page.get_by_label("Email").fill(OWNER)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#login-error")).to_have_text("✖ Email or password is wrong.")
        expect(page.get_by_text("Email or password is wrong")).to_have_count(1)
        expect(page.get_by_label("Email")).to_have_value(OWNER)
        expect(page.get_by_label("Password")).to_have_value("")
        assert page.evaluate(FITS)
        # The kept email is enough to try again with the right password.
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_audit_rows_say_what_changed(cloud: Cloud, playwright: Any) -> None:
    with cloud.api(OWNER) as c:
        team = f"/v1/products/{cloud.product}/team/{VIEWER}"
        assert c.post(team, data={"role": "support"}).status_code == 200
        assert c.post(team, data={"role": "view_only"}).status_code == 200
        customers = f"/v1/products/{cloud.product}/customers"
        r = c.post(customers, data={"email": "audited@mycompany.com", "no_password": "true"})
        assert r.status_code == 201, r.text
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}/audit?action=team.role")
        changed = page.locator('tbody td[data-label="What changed"]')
        expect(changed.first).to_have_text(f"{VIEWER}: Support → View-only")
        expect(changed.nth(1)).to_have_text(f"{VIEWER}: View-only → Support")
        page.goto(cloud.url + f"/console/p/{cloud.product}/audit?action=customer.create")
        expect(page.locator("tbody tr", has_text="audited@mycompany.com")).to_contain_text(
            "customer audited@mycompany.com (two-legged, no password)"
        )


def test_server_key_card_counts_only_the_products_addresses(cloud: Cloud, playwright: Any) -> None:
    ours = cloud.provision(OWNER, "1d0034000fffffffffff5005", "ours-alone")
    shared = cloud.provision(OWNER, "1d0034000fffffffffff5006", "ours-shared")
    seen_at(cloud, ours, "127.0.0.31:4000")
    seen_at(cloud, shared, "127.0.0.32:4000")
    # Another account's personal device last seen at the shared address.
    if SOLO not in cloud.tokens:
        cloud.admin(admin.create_user, SOLO, PASSWORD)
    other = personal_device(cloud, SOLO, "1d0034000fffffffffff5007", "someone-elses")
    seen_at(cloud, other, "127.0.0.32:4001")
    for address in ("127.0.0.31:4100", "127.0.0.32:4100", "127.0.0.33:4100"):
        server_key_refused(cloud, address)
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}")
        panel = page.locator("#server-key")
        expect(panel.locator("tbody tr", has_text="127.0.0.31")).to_have_count(1)
        # Shared with a device outside the product, or nobody's: not this product's to fix.
        expect(panel).not_to_contain_text("127.0.0.32")
        expect(panel).not_to_contain_text("127.0.0.33")
        card = page.locator('a.card[data-health="server_key"] .count')
        assert int(card.inner_text()) == panel.locator("tbody tr").count()

        # The refused device comes back (repaired): the address is history, not red.
        seen_at(cloud, ours, "127.0.0.31:4000")
        page.reload()
        expect(page.locator("#server-key tbody tr", has_text="127.0.0.31")).to_have_count(0)


def test_every_page_fits_a_phone_and_logs_no_error(cloud: Cloud, playwright: Any) -> None:
    cloud.admin(admin.create_user, LONG_EMAIL, PASSWORD)
    cloud.admin(admin.set_member_role, cloud.product, LONG_EMAIL, "developer")
    cloud.admin(admin.create_customer, cloud.product, "customer." + LONG_EMAIL, None)
    device = cloud.provision(OWNER, "1d0034000fffffffffff5008", "a" * 60)
    present_key(cloud, device, brownout_key())
    record(
        cloud,
        Presence(
            device.id, online=False, address="[2001:db8::1]:50000", handshake=False, at=utcnow()
        ),
    )
    product = f"/console/p/{cloud.product}"
    pages = [
        "/console?all=1",
        "/console/mine",
        product,
        f"/console/devices/{device.id}",
        f"{product}/team",
        f"{product}/customers",
        f"{product}/clients",
        f"{product}/audit",
    ]
    for viewport in (PHONE, DESKTOP):
        with browser_context(playwright, viewport=viewport) as browser:
            page = browser.new_page()
            failed = errors_logged(page)
            page.goto(cloud.url + "/console/login")
            assert page.evaluate(FITS), f"/console/login is wider than {viewport['width']} px"
            log_in(page, cloud, OWNER, pages[0])
            for path in pages:
                page.goto(cloud.url + path)
                page.wait_for_load_state("load")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert page.evaluate(FITS), f"{path}: {width} px wide at {viewport['width']} px"
            # Every page names its icon, and the icon is there.
            icon = page.locator('link[rel="icon"]').get_attribute("href")
            assert icon and page.request.get(cloud.url + icon).status == 200
            assert page.request.get(cloud.url + "/favicon.ico").status == 200
            assert failed == []
    # The Team page's own buttons are on screen, not cut off.
    with browser_context(playwright, viewport=PHONE) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"{product}/team")
        member = page.locator("tr", has_text=LONG_EMAIL)
        button = member.get_by_role("button", name="Change role")
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_api_docs_load_from_the_server_itself(cloud: Cloud, playwright: Any) -> None:
    asked: list[str] = []
    with browser_context(playwright) as browser:
        page = browser.new_page()

        def only_the_server(route: Any) -> None:
            # As on a machine without internet: anything not from the server fails.
            asked.append(route.request.url)
            if route.request.url.startswith(cloud.url + "/"):
                route.continue_()
            else:
                route.abort()

        page.route("**/*", only_the_server)
        failed = errors_logged(page)
        page.goto(cloud.url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Fermion cloud")
        expect(page.locator(".opblock-tag-section").first).to_be_visible()
    outside = [url for url in asked if not url.startswith(cloud.url + "/")]
    assert outside == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in asked)
    assert failed == []
