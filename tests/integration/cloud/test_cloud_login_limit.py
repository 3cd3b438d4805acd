"""Particle's login limit over HTTP: 10 consecutive failures from one address -> 429.

A module of its own: the block covers the whole loopback address for this server.
"""

from __future__ import annotations

import httpx
from cloud_harness import PASSWORD, Cloud


def test_ten_failures_block_the_address(cloud: Cloud) -> None:
    email = cloud.user(password=PASSWORD)
    url = f"{cloud.base_url}/oauth/token"
    for _ in range(10):
        reply = httpx.post(
            url, data={"grant_type": "password", "username": email, "password": "wrong"}
        )
        assert reply.status_code == 400
    blocked = httpx.post(
        url, data={"grant_type": "password", "username": email, "password": PASSWORD}
    )
    assert blocked.status_code == 429
    body = blocked.json()
    assert body["error"] == "too_many_requests"
    assert "try again in" in body["error_description"]
    assert 0 < body["retry_after"] <= 1800
