"""Login floods, the login limit and account probing, over HTTP against ``fermion serve``
(issue #10, items 3-5).

Every test sends from a loopback address of its own (``127.0.0.x``, all routed to the server's
127.0.0.1), so that the blocks one test provokes on purpose do not stand in another's way.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter

import httpx
from cloud_harness import PASSWORD, Cloud

TOKEN_URL = "/oauth/token"


def source(address: str) -> httpx.HTTPTransport:
    return httpx.HTTPTransport(local_address=address)


def async_source(address: str) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=None)
    )


def password_form(username: str, password: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": username, "password": password, **extra}


def verifications(cloud: Cloud) -> float:
    """argon2 verifications the server has run, from its own ``/metrics``."""
    text = httpx.get(f"{cloud.base_url}/metrics").text
    found = re.search(r"^fermion_argon2_verifications_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def verified_by(cloud: Cloud, send: object) -> float:
    before = verifications(cloud)
    assert callable(send)
    send()
    return verifications(cloud) - before


async def flood(
    cloud: Cloud, address: str, forms: list[dict[str, str]], timeout: float = 60
) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=cloud.base_url, transport=async_source(address), timeout=timeout
    ) as http:
        return list(await asyncio.gather(*(http.post(TOKEN_URL, data=f) for f in forms)))


# --- item 4: attempts count when they start, per address and per account -----------------------


def test_concurrent_wrong_logins_are_checked_at_most_ten_times(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    before = verifications(cloud)
    replies = asyncio.run(flood(cloud, "127.0.0.11", [password_form(email, "wrong")] * 60))
    statuses = Counter(r.status_code for r in replies)
    checked = verifications(cloud) - before
    assert set(statuses) <= {400, 429, 503}, statuses
    assert statuses[400] + statuses[503] <= 10, statuses  # refused before any check: 429
    assert statuses[429] >= 50, statuses
    assert checked <= 10, (checked, statuses)
    refused = next(r for r in replies if r.status_code == 429).json()
    assert refused["error"] == "too_many_requests"
    assert "from 127.0.0.11" in refused["error_description"]
    assert refused["retry_after"] >= 1


def test_guessing_between_own_logins_still_blocks_the_victim(cloud: Cloud) -> None:
    victim = cloud.user(password=PASSWORD)
    attacker = cloud.user(password="attackers-own-password")
    guesses = Counter[int]()
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.12")) as http:
        for _round in range(3):
            for _ in range(9):
                guesses[http.post(TOKEN_URL, data=password_form(victim, "guess")).status_code] += 1
            own = http.post(TOKEN_URL, data=password_form(attacker, "attackers-own-password"))
            assert own.status_code == 200, own.text  # the address's count starts again...
    assert guesses[400] == 10 and guesses[429] == 17, guesses  # ...the victim's does not
    # The victim's account is blocked from every address, the right password included, and the
    # reply names the account's limit, not the address's.
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.13")) as http:
        blocked = http.post(TOKEN_URL, data=password_form(victim, PASSWORD))
        assert blocked.status_code == 429, blocked.text
        assert "for this account" in blocked.json()["error_description"]
        assert blocked.json()["retry_after"] > 60
        # Only that account: other people log in from there as before.
        assert http.post(
            TOKEN_URL, data=password_form(attacker, "attackers-own-password")
        ).is_success


def test_an_unknown_account_is_blocked_like_a_real_one(cloud: Cloud) -> None:
    """The account limit is kept by name, so a 429 does not tell that the account exists."""
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    statuses = []
    for i in range(11):  # each from another address: only the account's count adds up
        with httpx.Client(base_url=cloud.base_url, transport=source(f"127.0.2.{i + 1}")) as http:
            reply = http.post(TOKEN_URL, data=password_form(unknown, "x"))
            statuses.append(reply.status_code)
    assert statuses == [400] * 10 + [429]
    assert "for this account" in reply.json()["error_description"]


# --- item 3: a flood neither holds connections nor waits unboundedly ---------------------------


def test_a_flood_from_one_address_leaves_other_callers_served(cloud: Cloud) -> None:
    email, token = cloud.user_token()
    victim_of_delay = cloud.user(password=PASSWORD)
    other: Counter[int] = Counter()

    async def others(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=cloud.base_url, timeout=30) as http:
            while not stop.is_set():
                reply = await http.get("/v1/user", headers={"Authorization": f"Bearer {token}"})
                other[reply.status_code] += 1
                devices = await http.get(
                    "/v1/devices", headers={"Authorization": f"Bearer {token}"}
                )
                other[devices.status_code] += 1

    async def correct_login() -> float:
        """Another person's correct login during the flood: answered, at worst told to wait."""
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=cloud.base_url, transport=async_source("127.0.0.16"), timeout=30
        ) as http:
            for _ in range(30):
                reply = await http.post(TOKEN_URL, data=password_form(victim_of_delay, PASSWORD))
                if reply.status_code != 503:
                    break
                await asyncio.sleep(reply.json()["retry_after"])
        assert reply.status_code == 200, reply.text
        return time.monotonic() - started

    async def go() -> tuple[list[httpx.Response], float]:
        stop = asyncio.Event()
        background = asyncio.create_task(others(stop))
        await asyncio.sleep(0.2)
        forms = [password_form(f"u{i}-{email}", "wrong") for i in range(200)]
        replies, login_seconds = await asyncio.gather(
            flood(cloud, "127.0.0.15", forms), correct_login()
        )
        stop.set()
        await background
        return replies, login_seconds

    replies, login_seconds = asyncio.run(go())
    statuses = Counter(r.status_code for r in replies)
    assert set(statuses) <= {400, 429, 503}, statuses
    # At most ten checked; a 503 (queue full) checked nothing and gives its place back.
    assert statuses[400] <= 10, statuses
    assert set(other) == {200} and other[200] >= 2, other
    # Answered (at worst after a few 503s), not stuck: a loose bound, the machine is shared.
    assert login_seconds < 30
    assert "QueuePool limit" not in cloud.server.log()


def test_a_flood_from_many_addresses_is_refused_promptly_when_the_queue_is_full(
    cloud: Cloud,
) -> None:
    email, token = cloud.user_token()

    async def one(i: int) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=cloud.base_url, transport=async_source(f"127.0.1.{i + 1}"), timeout=60
        ) as http:
            reply = await http.post(TOKEN_URL, data=password_form(f"{i}-{email}", "wrong"))
        return reply, time.monotonic() - started

    async def go() -> list[tuple[httpx.Response, float]]:
        return list(await asyncio.gather(*(one(i) for i in range(40))))

    results = asyncio.run(go())
    statuses = Counter(r.status_code for r, _ in results)
    # Forty different accounts from forty addresses: no limit applies, the argon2 queue takes
    # eight at a time, and the rest are told to come back instead of waiting behind the others.
    assert set(statuses) <= {400, 503}, statuses
    assert statuses[503] >= 1, statuses
    busy = next(r for r, _ in results if r.status_code == 503)
    body = busy.json()
    assert body["error"] == "temporarily_unavailable", body
    assert "busy" in body["error_description"]
    assert body["retry_after"] >= 1 and busy.headers["retry-after"] == str(body["retry_after"])
    assert cloud.http(token).get("/v1/user").status_code == 200


# --- item 5: the same work whether or not the account exists -----------------------------------


def test_password_grant_verifies_once_whether_or_not_the_user_exists(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.21")) as http:
        for who in (email, unknown):
            form = password_form(who, "wrong", client_id="particle", client_secret="particle")
            assert verified_by(cloud, lambda form=form: http.post(TOKEN_URL, data=form)) == 1, who


def test_customer_login_verifies_twice_whether_or_not_the_customer_exists(cloud: Cloud) -> None:
    owner = cloud.user()
    product = cloud.product(owner)
    client_id, secret = cloud.two_legged_client(product)
    customer = cloud.customer(product, password=PASSWORD)
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.22")) as http:
        for who in (customer, unknown):
            form = password_form(who, "wrong", client_id=client_id, client_secret=secret)
            # the client's secret, then the customer's password (or the dummy hash)
            assert verified_by(cloud, lambda form=form: http.post(TOKEN_URL, data=form)) == 2, who
        ok = http.post(
            TOKEN_URL,
            data=password_form(customer, PASSWORD, client_id=client_id, client_secret=secret),
        )
        assert ok.status_code == 200, ok.text


def test_client_credentials_verifies_once_whether_or_not_the_client_exists(cloud: Cloud) -> None:
    product = cloud.product(cloud.user())
    client_id, _secret = cloud.two_legged_client(product)
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.23")) as http:
        for who in (client_id, f"nobody-{secrets.token_hex(3)}"):

            def send(who: str = who) -> None:
                reply = http.post(
                    TOKEN_URL, auth=(who, "wrong"), data={"grant_type": "client_credentials"}
                )
                assert reply.status_code == 401, reply.text

            assert verified_by(cloud, send) == 1, who


def test_console_login_verifies_once_whether_or_not_the_user_exists(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=cloud.base_url, transport=source("127.0.0.24")) as http:
        for who in (email, unknown):
            page = http.get("/console/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None

            def send(who: str = who, csrf: str = token.group(1)) -> None:
                reply = http.post(
                    "/console/login",
                    data={"username": who, "password": "wrong", "csrf_token": csrf},
                    # Secure cookie: httpx keeps it off plain http, a browser sends it to loopback
                    headers={"Cookie": f"fermion_console_login={csrf}"},
                )
                assert reply.status_code == 400 and "Email or password is wrong" in reply.text

            assert verified_by(cloud, send) == 1, who
