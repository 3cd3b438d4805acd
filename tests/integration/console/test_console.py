"""The console driven the way a person uses it: Debian's Chromium, headless, against a real
``fermion serve`` on loopback."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from fermion.cloud import admin
from fermion.cloud.devices.registry import OutcomeFact
from fermion.keys import public_key_pem
from fermion.protocol.errors import Outcome

from .conftest import CUSTOMER, DEVELOPER, OWNER, VIEWER
from .harness import PASSWORD, Cloud, Sims, browser_context, run_async, screenshot, wait_for
from .wire import brownout_key, present_key, reconnect, record, server_key_refused

pytestmark = pytest.mark.integration
FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def log_in(page: Page, cloud: Cloud, email: str, path: str = "/console") -> None:
    page.goto(cloud.url + path)
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def csrf_of(page: Page) -> str:
    return page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""


def post_form(page: Page, path: str, fields: dict[str, str]) -> int:
    """Submit a form the page does not show, from the page itself (same origin, its cookies)."""
    return page.evaluate(
        """async ([path, fields]) => {
            const body = new URLSearchParams(fields);
            const r = await fetch(path, {method: "POST", body, redirect: "manual"});
            return r.status;
        }""",
        [path, fields],
    )


def test_brownout_refused_approve_then_online(cloud: Cloud, playwright: Any) -> None:
    """The seed's story with a simulated Photon on the cloud's device server: online; a
    brownout erases its key sector (it makes a new key and falls back to the backup server
    key); refused by address; the server key put back, refused for its key, with proof it holds
    it; approved in the console; online again, without a reload."""
    sims = Sims(cloud)
    device_id = sims.create("photon")
    device = cloud.provision(OWNER, device_id, "greenhouse-7", key=sims.public_key(device_id))
    cloud.provision(OWNER, "1d0034000fffffffffff3934", "greenhouse-8")  # never connects

    def online() -> bool:
        return bool(cloud.device_json(OWNER, device.id)["online"])

    with sims.running(device.id):
        wait_for(online, "the device to come online")
    wait_for(lambda: not online(), "the device to go offline")

    sims.fermion("sim", "fault", device.id, "--brownout")
    new_key = sims.public_key(device.id)
    assert new_key.fingerprint.sha256 != device.fingerprint

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}")
        expect(page.get_by_role("heading", name=re.compile("Fleet health"))).to_be_visible()

        # Its server key is the backup cloud's: the cloud cannot even read who it is.
        with sims.running(device.id):
            wrong_server_key = page.locator("#server-key tbody tr")
            for _ in range(60):
                page.reload()
                if wrong_server_key.count():
                    break
                page.wait_for_timeout(500)
            expect(wrong_server_key).to_contain_text("127.0.0.1")

        sims.write_server_key(device.id)  # what `fermion keys server` does
        with sims.running(device.id):
            wait_for(lambda: cloud.candidates(OWNER, device.id), "the presented key")
            wait_for(
                lambda: cloud.candidates(OWNER, device.id)[0]["possession_proven"],
                "the proof of possession",
            )
            page.reload()
            proven = page.locator('a.card[data-health="mismatch_proven"]')
            expect(proven.locator(".count")).to_have_text("1")
            expect(page.locator('a.card[data-health="never"] .count')).to_have_text("1")
            row = page.locator(f'tr[data-device="{device.id}"]')
            expect(row).to_contain_text("Key mismatch — possession proven")
            assert page.evaluate(FITS)  # usable at 1280 px: nothing scrolls sideways
            screenshot(page, "console-fleet.png")

            proven.click()  # the filter narrows the table to the refused device
            expect(page.locator("tbody tr[data-device]")).to_have_count(1)

            row.get_by_role("link", name=device.id).click()
            candidate = page.locator("#candidate")
            expect(candidate.locator('[data-fp="current"]')).to_have_text(device.fingerprint)
            expect(candidate.locator('[data-fp="presented"]')).to_have_text(
                new_key.fingerprint.sha256
            )
            expect(candidate).to_contain_text("Proven")
            assert page.evaluate(FITS)
            screenshot(page, "console-device.png")

            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="Approve").click()
            expect(page.locator(".notice")).to_contain_text("Key approved")
            expect(page.locator('[data-live="key"]')).to_contain_text(new_key.fingerprint.sha256)

            # No reload from here: the page polls, and turns green when the device is back.
            page.evaluate("window.__stillTheSamePage = true")
            expect(page.locator('[data-live="online"]')).to_contain_text("Online", timeout=60_000)
            expect(page.locator('[data-live="health"]')).to_contain_text("OK", timeout=60_000)
            assert page.evaluate("window.__stillTheSamePage") is True

            # Back online, it has described itself and published its events again.
            page.reload()
            expect(page.locator("pre.describe")).to_be_visible()
            expect(page.locator("ul.events")).to_contain_text("event")
            screenshot(page, "console-device-online.png")

    events = cloud.audit(OWNER, device_id=device.id, action="key.candidate.approve")
    assert [e["actor"] for e in events] == [f"user:{OWNER}"]


def test_unclaim_a_customers_device(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4001", "customer-kettle")
    cloud.claim_for_customer(CUSTOMER, device.id)
    assert cloud.device_json(OWNER, device.id)["customer"] == CUSTOMER

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, DEVELOPER, f"/console/devices/{device.id}")
        expect(page.locator(".facts")).to_contain_text(f"{CUSTOMER} (customer)")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Unclaim from {CUSTOMER}").click()
        expect(page.locator(".notice")).to_contain_text("Device unclaimed")
        expect(page.locator(".facts").first).to_contain_text("unclaimed")

    after = cloud.device_json(OWNER, device.id)
    assert after["owner"] is None and after["customer"] is None
    assert after["key_fingerprint"] == device.fingerprint  # nothing else changed
    events = cloud.audit(OWNER, device_id=device.id, action="device.unclaim")
    assert events and events[0]["actor"] == f"user:{DEVELOPER}"


def test_view_only_member_sees_no_approve_and_a_forged_approve_is_refused(
    cloud: Cloud, playwright: Any
) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4002", "viewer-sees-this")
    present_key(cloud, device, brownout_key(), proven=True)
    (candidate,) = cloud.candidates(OWNER, device.id)
    before_audit = cloud.audit(OWNER, device_id=device.id)

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, VIEWER, f"/console/devices/{device.id}")
        expect(page.locator("#candidate")).to_contain_text("needs the Developer role")
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        expect(page.get_by_role("button", name="Reject")).to_have_count(0)
        status = post_form(
            page,
            f"/console/devices/{device.id}/approve",
            {"csrf_token": csrf_of(page), "candidate_id": str(candidate["id"])},
        )
        assert status == 403

    (still,) = cloud.candidates(OWNER, device.id)
    assert still["status"] == "pending"
    assert cloud.device_json(OWNER, device.id)["key_fingerprint"] == device.fingerprint
    assert cloud.audit(OWNER, device_id=device.id) == before_audit


def test_missing_or_forged_csrf_token_is_refused(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4003", "csrf-target")
    cloud.claim_for_customer(CUSTOMER, device.id)

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/devices/{device.id}")
        path = f"/console/devices/{device.id}/unclaim"
        assert post_form(page, path, {}) == 403
        assert post_form(page, path, {"csrf_token": "forged" + csrf_of(page)[6:]}) == 403
        assert post_form(page, f"/console/devices/{device.id}/rename", {"name": "x"}) == 403

    after = cloud.device_json(OWNER, device.id)
    assert after["customer"] == CUSTOMER and after["name"] == "csrf-target"


def test_expired_session_goes_to_login_and_back_to_the_page(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4004", "remember-me")
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/devices/{device.id}")
        expire_console_sessions(cloud, OWNER)
        page.goto(cloud.url + f"/console/devices/{device.id}?tab=keys")
        expect(page).to_have_url(re.compile(r"/console/login\?next=%2Fconsole%2Fdevices%2F"))
        page.get_by_label("Email").fill(OWNER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(rf"/console/devices/{device.id}\?tab=keys$"))
        expect(page.get_by_role("heading", name=re.compile("remember-me"))).to_be_visible()


def test_key_upload_malformed_shows_error_and_changes_nothing_then_repairs(
    cloud: Cloud, playwright: Any, tmp_path: Any
) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4005", "needs-repair")
    cloud.claim_for_customer(CUSTOMER, device.id)
    bad = tmp_path / "device.pub.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot a key at all\n-----END PUBLIC KEY-----\n")
    good_key = brownout_key()
    good = tmp_path / "good.pub.pem"
    good.write_bytes(public_key_pem(good_key.public))

    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, DEVELOPER, f"/console/devices/{device.id}")
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator('input[name="public_key"]').set_input_files(str(bad))
        page.get_by_role("button", name=re.compile("Repair key")).click()
        error = page.locator("#public_key-error")
        expect(error).to_contain_text("publicKey")
        expect(page.locator('input[name="public_key"]')).to_have_attribute("aria-invalid", "true")
        assert cloud.device_json(OWNER, device.id)["key_fingerprint"] == device.fingerprint

        page.locator('input[name="public_key"]').set_input_files(str(good))
        page.get_by_role("button", name=re.compile("Repair key")).click()
        expect(page.locator(".notice")).to_contain_text("claim is kept")
        expect(page.locator('[data-live="key"]')).to_contain_text(good_key.fingerprint.sha256)

    after = cloud.device_json(OWNER, device.id)
    assert after["key_fingerprint"] == good_key.fingerprint.sha256
    assert after["customer"] == CUSTOMER  # the claim is kept


def test_device_page_shows_the_clouds_repair_plan_and_offers_only_its_repair(
    cloud: Cloud, playwright: Any
) -> None:
    # An unclaimed product device is repaired by sending its key (the plan says so), not by
    # the atomic "keep the claim" repair, which the page offers only when the plan is that.
    device = cloud.provision(OWNER, "1d0034000fffffffffff4015", "unclaimed-one")
    present_key(cloud, device, brownout_key(), proven=True)
    claimed = cloud.provision(OWNER, "1d0034000fffffffffff4016", "claimed-one")
    cloud.claim_for_customer(CUSTOMER, claimed.id)
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, DEVELOPER, f"/console/devices/{device.id}")
        panel = page.locator(".repair-plan")
        expect(panel).to_contain_text("Repair plan")
        expect(panel.locator("li").first).to_be_visible()
        expect(page.get_by_role("button", name=re.compile("Repair key"))).to_have_count(0)
        page.goto(cloud.url + f"/console/devices/{claimed.id}")
        expect(page.get_by_role("button", name=re.compile("Repair key"))).to_have_count(1)


def test_phone_width_pages_fit_and_read_without_colour(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4006", "pocket")
    present_key(cloud, device, brownout_key(), proven=False)
    with browser_context(playwright, viewport={"width": 390, "height": 844}) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}?q=pocket")
        assert page.evaluate(FITS)
        row = page.locator(f'tr[data-device="{device.id}"]')
        # The state is written out, and has a symbol: no colour needed to read it.
        expect(row).to_contain_text("✖ Key mismatch — unproven")
        expect(row).to_contain_text("○ Offline")
        screenshot(page, "console-fleet-phone.png")
        row.get_by_role("link", name=device.id).click()
        expect(page.locator("#candidate")).to_contain_text("Not proven")
        assert page.evaluate(FITS)
        screenshot(page, "console-device-phone.png")


def test_team_customers_and_oauth_clients(cloud: Cloud, playwright: Any) -> None:
    cloud.admin(admin.create_user, "newcomer@example.com", PASSWORD)
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}/team")
        page.on("dialog", lambda dialog: dialog.accept())

        invite = page.locator('form[action$="/team/invite"]')
        invite.get_by_label("Email").fill("newcomer@example.com")
        invite.get_by_label("Role").select_option("Support")
        invite.get_by_role("button", name="Invite").click()
        expect(page.locator(".notice")).to_contain_text("invited")
        member = page.locator("tr", has_text="newcomer@example.com")
        expect(member.locator('td[data-label="Role"]')).to_have_text("Support")

        member.get_by_label("Role for newcomer@example.com").select_option("Developer")
        member.get_by_role("button", name="Change role").click()
        expect(page.locator(".notice")).to_contain_text("Role changed")
        member = page.locator("tr", has_text="newcomer@example.com")
        expect(member.locator('td[data-label="Role"]')).to_have_text("Developer")

        member.get_by_role("button", name="Remove").click()
        expect(page.locator(".notice")).to_contain_text("removed")
        expect(page.locator("tr", has_text="newcomer@example.com")).to_have_count(0)

        # An unknown person cannot be invited: the error is shown next to the form.
        invite = page.locator('form[action$="/team/invite"]')
        invite.get_by_label("Email").fill("nobody@example.com")
        invite.get_by_role("button", name="Invite").click()
        expect(page.locator("#invite-error")).to_be_visible()

        page.get_by_role("link", name="Customers").click()
        create = page.locator('form[action$="/customers/create"]')
        create.get_by_label("Email").fill("shadow@mycompany.com")
        create.get_by_role("button", name="Create").click()
        expect(page.locator(".notice")).to_contain_text("Customer created")
        customer = page.locator("tr", has_text="shadow@mycompany.com")
        expect(customer).to_have_count(1)
        customer.get_by_role("button", name="Delete").click()
        expect(page.locator(".notice")).to_contain_text("Customer deleted")
        expect(page.locator("tr", has_text="shadow@mycompany.com")).to_have_count(0)

        page.get_by_role("link", name="OAuth clients").click()
        create = page.locator('form[action$="/clients/create"]')
        create.get_by_label("Name").fill("Fleet backend")
        create.get_by_role("button", name="Create").click()
        secret = page.locator('[data-created="secret"]').inner_text()
        client_id = page.locator('[data-created="id"]').inner_text()
        assert len(secret) >= 20
        page.goto(cloud.url + f"/console/p/{cloud.product}/clients")
        expect(page.locator("body")).not_to_contain_text(secret)  # shown once, never again
        client = page.locator("tr", has_text=client_id)
        client.get_by_role("button", name="Delete").click()
        expect(page.locator(".notice")).to_contain_text("client deleted")
        expect(page.locator("tr", has_text=client_id)).to_have_count(0)


def test_audit_log_filters_and_links_to_the_device(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4007", "audited")
    with cloud.api(OWNER) as c:
        assert c.put(f"/v1/devices/{device.id}", data={"name": "audited-2"}).status_code == 200
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}/audit")
        page.get_by_label("Device id").fill(device.id)
        page.get_by_label("Action").fill("key.upload")
        page.get_by_role("button", name="Filter").click()
        rows = page.locator("table.audit tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(f"user:{OWNER}")
        page.get_by_label("From").fill("2999-01-01T00:00")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("table.audit")).to_contain_text("No events match")
        page.get_by_label("From").fill("2000-01-01T00:00")
        page.get_by_label("Until").fill("2999-01-01T00:00")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        page.get_by_label("Actor").fill("user:nobody@example.com")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("table.audit")).to_contain_text("No events match")
        page.goto(cloud.url + f"/console/p/{cloud.product}/audit?device_id={device.id}")
        page.locator("table.audit tbody tr").first.get_by_role("link", name=device.id).click()
        expect(page).to_have_url(re.compile(rf"/console/devices/{device.id}$"))


def test_fleet_search_sort_and_pages(cloud: Cloud, playwright: Any) -> None:
    for n in range(27):
        cloud.provision(OWNER, f"2e00000000000000000000{n:02x}", f"row-{n:02d}")
    hostile = "<script>alert(1)</script>"
    cloud.provision(OWNER, "2e0000000000000000000100", hostile)
    dialogs: list[str] = []
    with browser_context(playwright) as browser:
        page = browser.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}?q=2e00&sort=name&dir=asc")
        rows = page.locator("tbody tr[data-device]")
        expect(rows).to_have_count(25)
        expect(page.locator(".pager")).to_contain_text("Page 1 of 2")
        # A name is text, never markup.
        expect(rows.first.locator('td[data-label="Name"]')).to_have_text(hostile)
        page.get_by_role("link", name="Next").click()
        expect(rows).to_have_count(3)
        expect(rows.last.locator('td[data-label="Name"]')).to_have_text("row-26")
        page.get_by_role("link", name=re.compile("^Name")).click()  # now descending
        expect(rows.first.locator('td[data-label="Name"]')).to_have_text("row-26")
        page.get_by_label("Search by device id or name").fill("row-1")
        page.get_by_role("button", name="Search").click()
        expect(rows).to_have_count(10)
    assert dialogs == []


def expire_console_sessions(cloud: Cloud, email: str) -> None:
    """Move the person's console tokens' expiry into the past, as time would."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from fermion.cloud.store.models import AccessToken, User, utcnow

    async def go() -> None:
        store = cloud.store()
        try:
            async with store.write() as session:
                user_id = await session.scalar(select(User.id).where(User.email == email))
                await session.execute(
                    update(AccessToken)
                    .where(
                        AccessToken.user_id == user_id,
                        AccessToken.client_name == "fermion-console",
                    )
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
        finally:
            await store.close()

    run_async(go())


def test_server_key_wrong_is_shown_by_address(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4008", "seen-here-before")
    reconnect(cloud, device, "127.0.0.2")  # the product knows this address
    server_key_refused(cloud, "127.0.0.2:40001")
    server_key_refused(cloud, "127.0.0.2:40002")
    server_key_refused(cloud, "198.51.100.7:40003")  # not an address of this product's devices
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}")
        panel = page.locator("#server-key")
        row = panel.locator("tbody tr", has_text="127.0.0.2")
        expect(row.locator('td[data-label="Refused"]')).to_have_text("2")
        expect(panel).not_to_contain_text("198.51.100.7")
        card = page.locator('a.card[data-health="server_key"] .count')
        assert int(card.inner_text()) == panel.locator("tbody tr").count()


def test_rename_then_remove_from_product(cloud: Cloud, playwright: Any) -> None:
    device = cloud.provision(OWNER, "1d0034000fffffffffff4009", "old-name")
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, DEVELOPER, f"/console/devices/{device.id}")
        page.get_by_label("Name").fill("  ")
        page.get_by_role("button", name="Rename").click()
        expect(page.locator("#name-error")).to_contain_text("name")
        assert cloud.device_json(OWNER, device.id)["name"] == "old-name"
        page.get_by_label("Name").fill("Greenhouse <7> & co")
        page.get_by_role("button", name="Rename").click()
        expect(page.locator(".notice")).to_contain_text("renamed")
        expect(page.get_by_role("heading", level=1)).to_contain_text("Greenhouse <7> & co")

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Remove from product").click()
        expect(page).to_have_url(re.compile(rf"/console/p/{cloud.product}$"))
        expect(page.locator(".notice")).to_contain_text("removed from the product")
        expect(page.locator(f'tr[data-device="{device.id}"]')).to_have_count(0)

    # Out of the product, the device is no longer the team's to look up; the product's trail
    # still has the removal.
    events = cloud.audit(OWNER, action="device.remove")
    assert [e["actor"] for e in events if e["device_id"] == device.id] == [f"user:{DEVELOPER}"]


def test_login_form_refuses_bad_csrf_wrong_password_and_offsite_next(cloud: Cloud) -> None:
    with httpx.Client(base_url=cloud.url) as c:
        page = c.get("/console/login", params={"next": "https://evil.example/steal"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        assert 'name="next" value="/console"' in page.text  # the off-site target is dropped
        form = {"username": OWNER, "password": PASSWORD, "next": "//evil.example/"}

        # No token, or a token that is not the cookie's: refused, nobody logged in.
        refused = c.post("/console/login", data=form)
        assert refused.status_code == 403 and "fermion_console=" not in str(refused.headers)
        # The login cookie is Secure, which httpx keeps off plain http; a browser sends it to
        # 127.0.0.1, so send it by hand.
        login_cookie = {"Cookie": f"fermion_console_login={token.group(1)}"}
        forged = c.post(
            "/console/login", data={**form, "csrf_token": "x" * 43}, headers=login_cookie
        )
        assert forged.status_code == 403

        wrong = c.post(
            "/console/login",
            data={**form, "password": "not it", "csrf_token": token.group(1)},
            headers=login_cookie,
        )
        assert wrong.status_code == 400 and "Email or password is wrong" in wrong.text

        ok = c.post(
            "/console/login", data={**form, "csrf_token": token.group(1)}, headers=login_cookie
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/console"
        cookie = ok.headers["set-cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=strict"):
            assert flag.lower() in cookie.lower()

        # Pages are not cached and carry a policy that allows only the console's own script.
        page = c.get("/console/login")
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_firmware_fault_and_online_filters(cloud: Cloud, playwright: Any) -> None:
    faulty = cloud.provision(OWNER, "1d0034000fffffffffff4010", "faulty-firmware")
    reconnect(cloud, faulty)
    record(
        cloud,
        OutcomeFact(Outcome.MALFORMED, faulty.id, "127.0.0.1:50200", "malformed CoAP message"),
    )
    up = cloud.provision(OWNER, "1d0034000fffffffffff4011", "up-and-fine")
    reconnect(cloud, up)
    with browser_context(playwright) as browser:
        page = browser.new_page()
        log_in(page, cloud, OWNER, f"/console/p/{cloud.product}")
        page.locator('a.card[data-health="fault"]').click()
        rows = page.locator("tbody tr[data-device]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("⚡ Firmware fault")
        page.goto(cloud.url + f"/console/p/{cloud.product}?online=online&q=up-and")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("● Online")
        expect(rows.first).to_contain_text("✔ OK")
        page.goto(cloud.url + f"/console/p/{cloud.product}?online=offline&q=up-and")
        expect(rows).to_have_count(0)
